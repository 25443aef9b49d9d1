"""``Environment``: a component that reports, coarsely, where a run happens.

A host adds ``Environment()`` to ``Config.components``; at level 2 and up its
``usage_information()`` adds six facts to the component list:

=============  ==========================================================================
``cpus``       usable CPU count, bucketed: ``1``, ``2-4``, ``5-16``, ``17-64``, ``>64``
``gpus``       NVIDIA GPUs visible as device files (``/dev/nvidia<N>``, else
               ``/proc/driver/nvidia/gpus/*``); ``0`` when none are visible
``scheduler``  ``slurm``, ``pbs``, ``lsf``, ``sge``, ``flux``, ``kubernetes`` or ``none``
``container``  ``docker``, ``podman``, ``apptainer``, ``other`` or ``none``
``ci``         ``github_actions``, ``gitlab``, ``jenkins``, ``azure``, ``buildkite``,
               ``circleci``, ``travis``, ``generic`` (``CI=true``/``1``) or ``none``
``cloud``      from the DMI vendor file: ``aws``, ``gcp``, ``azure``, ``alibaba``, ``oracle``,
               ``ibm``, ``openstack``, ``digitalocean``, ``hetzner``, ``linode``, ``vultr``,
               ``scaleway``, ``tencent``, ``other`` (any other vendor: bare metal, a laptop,
               a local VM) or ``unknown`` (no readable vendor file)
=============  ==========================================================================

Only *which* is reported, from a fixed vocabulary: never a variable's value, a job id, a host
name or the raw vendor string. Everything is found by looking at environment variable names
and at a few files, without a subprocess or the network, once per process (well under a
millisecond; ``bench/sdk_bench.py --only environment`` prints it). The look-up runs where
components are described: on the SDK's worker thread, never on the host's calling thread.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping

from attrs import field, frozen

__all__ = [
    "COMPONENT_NAME",
    "Environment",
    "EnvironmentFacts",
    "cpu_bucket",
    "detect",
    "reports_ci",
]

#: The name the component is listed under (its qualified class name).
COMPONENT_NAME = "telemetry_sdk.Environment"
#: The ``ci`` value that means "not a CI run".
_NO_CI = "none"


def reports_ci(name: str, info: Mapping[str, object]) -> bool | None:
    """What one listed component says about CI: True (a CI run), False, or None (it is not
    ``Environment``, or its ``ci`` detail is missing). The collector's one rule for CI runs.
    """
    if name != COMPONENT_NAME:
        return None
    value = info.get("ci")
    if type(value) is not str:
        return None
    return value != _NO_CI


@frozen
class EnvironmentFacts:
    """The coarse facts about one process' environment, each from a fixed vocabulary."""

    cpus: str
    gpus: int
    scheduler: str
    container: str
    ci: str
    cloud: str

    def as_info(self) -> dict[str, str | int]:
        """The facts as ``usage_information()`` reports them."""
        return {
            "cpus": self.cpus,
            "gpus": self.gpus,
            "scheduler": self.scheduler,
            "container": self.container,
            "ci": self.ci,
            "cloud": self.cloud,
        }


def cpu_bucket(count: int | None) -> str:
    """``1``, ``2-4``, ``5-16``, ``17-64`` or ``>64`` (``1`` when the count is unknown)."""
    if count is None or count <= 1:
        return "1"
    if count <= 4:
        return "2-4"
    if count <= 16:
        return "5-16"
    if count <= 64:
        return "17-64"
    return ">64"


def _usable_cpus() -> int | None:
    """CPUs this process may run on (its affinity mask where the platform has one)."""
    counter: Callable[[], int | None] | None = getattr(os, "process_cpu_count", None)
    count = counter() if counter is not None else None  # Python 3.13+
    if count:
        return count
    try:
        return len(os.sched_getaffinity(0)) or os.cpu_count()
    except (AttributeError, OSError):
        return os.cpu_count()


def _gpus(root: str) -> int:
    """NVIDIA GPUs visible as files; 0 when none are (or nothing can be listed)."""
    try:
        devices = [
            name
            for name in os.listdir(os.path.join(root, "dev"))
            if name.startswith("nvidia") and name[6:].isdigit()
        ]
    except OSError:
        devices = []
    if devices:
        return len(devices)
    try:
        return len(os.listdir(os.path.join(root, "proc", "driver", "nvidia", "gpus")))
    except OSError:
        return 0


def _is_set(environ: Mapping[str, str], name: str) -> bool:
    return bool(environ.get(name, "").strip())


def _is_true(environ: Mapping[str, str], name: str) -> bool:
    return environ.get(name, "").strip().lower() in {"true", "1", "yes"}


def _scheduler(environ: Mapping[str, str]) -> str:
    if _is_set(environ, "SLURM_JOB_ID") or _is_set(environ, "SLURM_JOBID"):
        return "slurm"
    if _is_set(environ, "PBS_JOBID"):
        return "pbs"
    if _is_set(environ, "LSB_JOBID"):
        return "lsf"
    if _is_set(environ, "SGE_TASK_ID") or (
        _is_set(environ, "JOB_ID") and _is_set(environ, "SGE_ROOT")
    ):
        return "sge"
    if _is_set(environ, "FLUX_JOB_ID") or _is_set(environ, "FLUX_URI"):
        return "flux"
    if _is_set(environ, "KUBERNETES_SERVICE_HOST"):
        return "kubernetes"
    return "none"


def _container(root: str, environ: Mapping[str, str]) -> str:
    if _is_set(environ, "APPTAINER_CONTAINER") or _is_set(environ, "SINGULARITY_CONTAINER"):
        return "apptainer"
    if os.path.exists(os.path.join(root, ".dockerenv")):
        return "docker"
    if os.path.exists(os.path.join(root, "run", ".containerenv")):
        return "podman"
    if os.path.isdir(os.path.join(root, ".singularity.d")):
        return "apptainer"
    # systemd's convention, followed by podman, LXC and systemd-nspawn.
    marker = environ.get("container", "").strip().lower()
    if marker in {"docker", "podman"}:
        return marker
    return "other" if marker else "none"


#: CI services in the order they are recognised: (token, variable, must be true-ish).
_CI: tuple[tuple[str, str, bool], ...] = (
    ("github_actions", "GITHUB_ACTIONS", True),
    ("gitlab", "GITLAB_CI", False),
    ("jenkins", "JENKINS_URL", False),
    ("azure", "TF_BUILD", True),
    ("buildkite", "BUILDKITE", True),
    ("circleci", "CIRCLECI", True),
    ("travis", "TRAVIS", True),
)


def _ci(environ: Mapping[str, str]) -> str:
    for token, name, truthy in _CI:
        if _is_true(environ, name) if truthy else _is_set(environ, name):
            return token
    return "generic" if _is_true(environ, "CI") else _NO_CI


#: Lower-cased DMI vendor prefixes and the cloud each one means; first match wins.
_VENDORS: tuple[tuple[str, str], ...] = (
    ("amazon", "aws"),
    ("google", "gcp"),
    ("microsoft corporation", "azure"),
    ("alibaba", "alibaba"),
    ("oraclecloud", "oracle"),
    ("ibm", "ibm"),
    ("openstack", "openstack"),
    ("digitalocean", "digitalocean"),
    ("hetzner", "hetzner"),
    ("linode", "linode"),
    ("akamai", "linode"),
    ("vultr", "vultr"),
    ("scaleway", "scaleway"),
    ("tencent", "tencent"),
)
_VENDOR_MAX = 256


def _cloud(root: str) -> str:
    folder = os.path.join(root, "sys", "class", "dmi", "id")
    for name in ("sys_vendor", "board_vendor"):
        try:
            with open(os.path.join(folder, name), "rb") as file:
                raw = file.read(_VENDOR_MAX)
        except OSError:
            continue
        vendor = raw.decode("ascii", "replace").strip().lower()
        if not vendor:
            continue
        for prefix, cloud in _VENDORS:
            if vendor.startswith(prefix):
                return cloud
        return "other"
    return "unknown"


def detect(root: str = "/", environ: Mapping[str, str] | None = None) -> EnvironmentFacts:
    """Look at this process' environment now (``root`` and ``environ`` are for tests)."""
    env = os.environ if environ is None else environ
    return EnvironmentFacts(
        cpus=cpu_bucket(_usable_cpus()),
        gpus=_gpus(root),
        scheduler=_scheduler(env),
        container=_container(root, env),
        ci=_ci(env),
        cloud=_cloud(root),
    )


@functools.cache
def _this_process() -> EnvironmentFacts:
    return detect()


def _to_root(value: str | os.PathLike[str]) -> str:
    return os.fspath(value)


@frozen
class Environment:
    """A component that reports where the run happens, coarsely (levels 2 and 3).

    >>> telemetry_sdk.Config(usage_tracking=2, components=[host_config, Environment()])

    The facts are looked up once per process, on first use. ``root`` and ``environ`` replace
    ``/`` and ``os.environ`` (tests); an instance with either set looks every time.
    """

    # Named ``telemetry_sdk.Environment`` in messages, not after this private module.
    __module__ = "telemetry_sdk"

    root: str = field(default="/", converter=_to_root)
    environ: Mapping[str, str] | None = field(default=None, repr=False, eq=False)

    def facts(self) -> EnvironmentFacts:
        """The facts about this process (cached) or about ``root`` and ``environ``."""
        if self.root == "/" and self.environ is None:
            return _this_process()
        return detect(self.root, self.environ)

    def usage_information(self) -> dict[str, str | int]:
        """The facts, as the component's details in level-2 and level-3 messages."""
        return self.facts().as_info()
