"""Environment: coarse facts about where a run happens, from real variables and files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from telemetry_sdk import Config, Environment, Product, UsageTracker
from telemetry_sdk._environment import _this_process, cpu_bucket, detect
from telemetry_sdk._wire import Component, decode
from telemetry_sdk.testing import capture_datagrams

VOCABULARY = {
    "cpus": {"1", "2-4", "5-16", "17-64", ">64"},
    "scheduler": {"slurm", "pbs", "lsf", "sge", "flux", "kubernetes", "none"},
    "container": {"docker", "podman", "apptainer", "other", "none"},
    "ci": {
        "github_actions",
        "gitlab",
        "jenkins",
        "azure",
        "buildkite",
        "circleci",
        "travis",
        "generic",
        "none",
    },
}


CLOUDS = {
    *("aws", "gcp", "azure", "alibaba", "oracle", "ibm", "openstack", "digitalocean"),
    *("hetzner", "linode", "vultr", "scaleway", "tencent", "other", "unknown"),
}


def touch(root: Path, relative: str, text: str = "") -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An empty file system root: nothing to detect."""
    folder = tmp_path / "root"
    folder.mkdir()
    return folder


class TestNothingDetected:
    def test_an_empty_root_and_environment_report_none(self, root):
        """With no files and no variables every fact is 'none' or 'unknown'."""
        facts = Environment(root=root, environ={}).usage_information()
        assert {k: v for k, v in facts.items() if k != "cpus"} == {
            "gpus": 0,
            "scheduler": "none",
            "container": "none",
            "ci": "none",
            "cloud": "unknown",
        }

    def test_this_process_uses_the_vocabulary(self):
        """The real process' facts are tokens from the documented vocabulary."""
        facts = Environment().usage_information()
        for key, allowed in VOCABULARY.items():
            assert facts[key] in allowed, key
        assert isinstance(facts["gpus"], int)
        assert facts["gpus"] >= 0
        assert facts["cloud"] in CLOUDS


class TestCpus:
    @pytest.mark.parametrize(
        ("count", "bucket"),
        [
            (None, "1"),
            (1, "1"),
            (2, "2-4"),
            (4, "2-4"),
            (5, "5-16"),
            (16, "5-16"),
            (17, "17-64"),
            (64, "17-64"),
            (65, ">64"),
            (1024, ">64"),
        ],
    )
    def test_buckets(self, count, bucket):
        """CPU counts fall in the buckets 1, 2-4, 5-16, 17-64 and >64 at their edges."""
        assert cpu_bucket(count) == bucket

    def test_the_process_count_is_bucketed(self, root):
        """The reported bucket is that of the CPUs this process may use."""
        usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        expected = cpu_bucket(usable or os.cpu_count())
        assert detect(str(root), {}).cpus == expected


class TestGpus:
    def test_nvidia_device_files_are_counted(self, root):
        """Each /dev/nvidia<N> counts; nvidiactl and nvidia-uvm do not."""
        for name in ("nvidia0", "nvidia1", "nvidia3", "nvidiactl", "nvidia-uvm", "null"):
            touch(root, f"dev/{name}")
        assert detect(str(root), {}).gpus == 3

    def test_the_driver_folder_is_the_fallback(self, root):
        """Without device files, /proc/driver/nvidia/gpus/* is counted."""
        for bus in ("0000:01:00.0", "0000:02:00.0"):
            (root / "proc/driver/nvidia/gpus" / bus).mkdir(parents=True)
        assert detect(str(root), {}).gpus == 2


class TestScheduler:
    @pytest.mark.parametrize(
        ("variables", "expected"),
        [
            ({"SLURM_JOB_ID": "12345"}, "slurm"),
            ({"PBS_JOBID": "77.server"}, "pbs"),
            ({"LSB_JOBID": "5"}, "lsf"),
            ({"SGE_TASK_ID": "1"}, "sge"),
            ({"JOB_ID": "9", "SGE_ROOT": "/opt/sge"}, "sge"),
            ({"JOB_ID": "9"}, "none"),
            ({"FLUX_URI": "local:///run/flux"}, "flux"),
            ({"FLUX_JOB_ID": "f1234"}, "flux"),
            ({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, "kubernetes"),
            ({"SLURM_JOB_ID": "1", "KUBERNETES_SERVICE_HOST": "10.0.0.1"}, "slurm"),
            ({"SLURM_JOB_ID": ""}, "none"),
        ],
    )
    def test_detected_by_variable(self, root, variables, expected):
        """Each batch scheduler is recognised by the variables it sets in a job."""
        assert detect(str(root), variables).scheduler == expected


class TestContainer:
    def test_docker(self, root):
        """/.dockerenv means Docker."""
        touch(root, ".dockerenv")
        assert detect(str(root), {}).container == "docker"

    def test_podman(self, root):
        """/run/.containerenv means Podman."""
        touch(root, "run/.containerenv", 'engine="podman-4.9"\n')
        assert detect(str(root), {}).container == "podman"

    def test_apptainer_by_folder(self, root):
        """/.singularity.d means Apptainer (or Singularity)."""
        (root / ".singularity.d").mkdir()
        assert detect(str(root), {}).container == "apptainer"

    @pytest.mark.parametrize("name", ["APPTAINER_CONTAINER", "SINGULARITY_CONTAINER"])
    def test_apptainer_by_variable(self, root, name):
        """APPTAINER_CONTAINER or SINGULARITY_CONTAINER means Apptainer."""
        assert detect(str(root), {name: "/images/x.sif"}).container == "apptainer"

    def test_the_container_variable(self, root):
        """The systemd 'container' variable names Podman or Docker, else 'other'."""
        assert detect(str(root), {"container": "podman"}).container == "podman"
        assert detect(str(root), {"container": "systemd-nspawn"}).container == "other"


class TestCi:
    @pytest.mark.parametrize(
        ("variables", "expected"),
        [
            ({"GITHUB_ACTIONS": "true", "CI": "true"}, "github_actions"),
            ({"GITLAB_CI": "true", "CI": "true"}, "gitlab"),
            ({"JENKINS_URL": "https://ci.example.org/"}, "jenkins"),
            ({"TF_BUILD": "True"}, "azure"),
            ({"BUILDKITE": "true", "CI": "true"}, "buildkite"),
            ({"CIRCLECI": "true", "CI": "true"}, "circleci"),
            ({"TRAVIS": "true", "CI": "true"}, "travis"),
            ({"CI": "true"}, "generic"),
            ({"CI": "1"}, "generic"),
            ({"CI": "false"}, "none"),
            ({"GITHUB_ACTIONS": "false"}, "none"),
            ({}, "none"),
        ],
    )
    def test_detected_by_variable(self, root, variables, expected):
        """Each CI service is recognised by its own variable; CI=true alone is 'generic'."""
        assert detect(str(root), variables).ci == expected


class TestCloud:
    @pytest.mark.parametrize(
        ("vendor", "expected"),
        [
            ("Amazon EC2\n", "aws"),
            ("Google\n", "gcp"),
            ("Microsoft Corporation\n", "azure"),
            ("Alibaba Cloud\n", "alibaba"),
            ("OracleCloud.com\n", "oracle"),
            ("OpenStack Foundation\n", "openstack"),
            ("DigitalOcean\n", "digitalocean"),
            ("Hetzner\n", "hetzner"),
            ("Dell Inc.\n", "other"),
            ("QEMU\n", "other"),
            ("ACME Secret Site 42 \u00e9\n", "other"),
        ],
    )
    def test_vendor_is_mapped_to_a_token(self, root, vendor, expected):
        """The DMI vendor becomes a fixed token; any other vendor is 'other', never the string."""
        touch(root, "sys/class/dmi/id/sys_vendor", vendor)
        assert detect(str(root), {}).cloud == expected

    def test_board_vendor_is_the_fallback(self, root):
        """Without sys_vendor, board_vendor is read."""
        touch(root, "sys/class/dmi/id/board_vendor", "Amazon EC2\n")
        assert detect(str(root), {}).cloud == "aws"

    def test_unreadable_vendor_is_unknown(self, root):
        """An empty or unreadable vendor file gives 'unknown'."""
        touch(root, "sys/class/dmi/id/sys_vendor", "")
        (root / "sys/class/dmi/id/board_vendor").mkdir()
        assert detect(str(root), {}).cloud == "unknown"


class TestPrivacy:
    def test_no_value_of_a_variable_is_reported(self, root):
        """Job ids, URLs and paths in the variables never appear in the facts."""
        secret = "s3cr3t-host.example.org"
        environ = {
            "SLURM_JOB_ID": secret,
            "JENKINS_URL": f"https://{secret}/",
            "APPTAINER_CONTAINER": f"/home/{secret}.sif",
            "container": secret,
        }
        touch(root, "sys/class/dmi/id/sys_vendor", secret)
        facts = Environment(root=root, environ=environ)
        assert secret not in repr(facts.usage_information())
        assert secret not in repr(facts)

    def test_facts_pass_the_wire_schema(self, root):
        """Every fact is a valid component detail on the wire."""
        touch(root, ".dockerenv")
        info = Environment(root=root, environ={"CI": "true"}).usage_information()
        assert Component("telemetry_sdk.Environment", info).info == info


class TestCaching:
    def test_the_process_facts_are_computed_once(self):
        """Environment() with no arguments looks once per process and reuses the result."""
        _this_process.cache_clear()
        Environment().usage_information()
        Environment().usage_information()
        assert _this_process.cache_info().misses == 1
        assert _this_process.cache_info().hits == 1

    def test_an_injected_root_is_looked_at_every_time(self, root):
        """With a root given, a change on disk shows in the next call."""
        env = Environment(root=root, environ={})
        assert env.usage_information()["container"] == "none"
        touch(root, ".dockerenv")
        assert env.usage_information()["container"] == "docker"


class TestInMessages:
    def test_level_2_start_message_carries_the_facts(self, root, tmp_path):
        """At level 2 the start message names telemetry_sdk.Environment with its facts."""
        touch(root, "run/.containerenv")
        environment = Environment(root=root, environ={"GITLAB_CI": "true", "PBS_JOBID": "1.s"})
        with capture_datagrams() as listener:
            product = Product(name="minflow", version="1.4.0", endpoint=listener.endpoint)
            config = Config(
                usage_tracking=2, components=[environment], log_path=tmp_path / "usage.jsonl"
            )
            with UsageTracker(config, product):
                pass
            message = decode(listener.wait_for(1)[0])
        assert message.components is not None
        (component,) = message.components
        assert component.name == "telemetry_sdk.Environment"
        assert component.info["ci"] == "gitlab"
        assert component.info["scheduler"] == "pbs"
        assert component.info["container"] == "podman"

    def test_level_1_does_not_look(self, root, tmp_path):
        """At level 1 no component is described, so the environment is not reported."""
        with capture_datagrams() as listener:
            product = Product(name="minflow", version="1.4.0", endpoint=listener.endpoint)
            config = Config(
                usage_tracking=1,
                components=[Environment(root=root, environ={})],
                log_path=tmp_path / "usage.jsonl",
            )
            with UsageTracker(config, product):
                pass
            message = decode(listener.wait_for(1)[0])
        assert message.components is None


class TestMinflow:
    def test_minflow_reports_its_environment(self, tmp_path, monkeypatch):
        """The example host lists telemetry_sdk.Environment with the facts of this process."""
        import sys

        monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "examples"))
        import minflow

        try:
            with capture_datagrams() as listener:
                config = minflow.Config(usage_tracking=2, usage_endpoint=listener.endpoint)
                with minflow.DataFlowKernel(config) as dfk:
                    dfk.submit(pow, 2, 3).result()
                message = decode(listener.wait_for(1)[0])
        finally:
            for name in [m for m in sys.modules if m.split(".")[0] == "minflow"]:
                del sys.modules[name]
        assert message.components is not None
        found = [c for c in message.components if c.name == "telemetry_sdk.Environment"]
        assert [c.info for c in found] == [Environment().usage_information()]
