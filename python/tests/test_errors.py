"""Every failure is an exception carrying the library's status; the ones
the CLI maps to an exit code carry the same one-line message and that exit
code; argument mistakes are TypeError/ValueError before anything runs."""

import json
import subprocess

import pytest

import hoist
from hoist._errors import error_class


def cli_load(cli, *args):
    """(exit code, message) of `hoist load` on the host backend."""
    r = subprocess.run([str(cli), "load", *args], capture_output=True, text=True)
    lines = r.stderr.strip().splitlines()
    assert lines, r
    prefix = "hoist load: "
    assert lines[-1].startswith(prefix), lines
    return r.returncode, lines[-1][len(prefix):]


def assert_same_as_cli(err, cli, *args):
    code, message = cli_load(cli, *args)
    assert (err.exit_code, err.message) == (code, message)
    assert str(err) == message and "\n" not in message


def corrupt_component(tmp_path, header):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header)
    return folder


@pytest.mark.parametrize("header,status", [
    (b'{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]', "HEADER_JSON"),
    (b'{"w": {"dtype": "F99", "shape": [2], "data_offsets": [0, 8]}}', "BAD_DTYPE"),
    (b'{"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}', "SIZE_MISMATCH"),
])
def test_bad_file_is_invalid_input(tmp_path, hoist_cli, header, status):
    folder = corrupt_component(tmp_path, header)
    with hoist.Runtime("host") as rt:
        with pytest.raises(hoist.InvalidInput) as err:
            rt.load(folder, progress=False)
        assert err.value.status == status and err.value.code < 0
        assert_same_as_cli(err.value, hoist_cli, "--device", "host", str(folder))
        with pytest.raises(hoist.InvalidInput) as err2:
            rt.plan(folder)  # headers only: the same refusal
        assert err2.value.status == status


def test_missing_and_malformed_pipelines(tmp_path, hoist_cli, np_pipeline):
    with hoist.Runtime("host") as rt:
        with pytest.raises(hoist.InvalidInput) as err:
            rt.load(tmp_path / "nowhere", progress=False)
        assert err.value.status == "NOT_FOUND"
        assert_same_as_cli(err.value, hoist_cli, str(tmp_path / "nowhere"))
        (np_pipeline / "model_index.json").write_text("{not json")
        with pytest.raises(hoist.InvalidInput) as err:
            rt.load(np_pipeline, progress=False)
        assert err.value.status == "BAD_PIPELINE"
        assert_same_as_cli(err.value, hoist_cli, str(np_pipeline))


def test_does_not_fit_names_component_and_numbers(np_pipeline, hoist_cli):
    cap = 1 << 20
    with hoist.Runtime("host", capacity=cap) as rt:
        with pytest.raises(hoist.DoesNotFit) as err:
            rt.load(np_pipeline, progress=False)
    e = err.value
    assert e.status == "ADMISSION" and e.exit_code == 4
    assert e.component == "transformer" and e.free_bytes == cap and e.need_bytes > cap
    r = subprocess.run([str(hoist_cli), "load", "--json", "--capacity", str(cap), str(np_pipeline)],
                       capture_output=True, text=True)
    cli = json.loads(r.stdout)
    assert r.returncode == 4
    assert (cli["error"], cli["status"], cli["component"], cli["need_bytes"], cli["free_bytes"]) \
        == (e.message, e.status, e.component, e.need_bytes, e.free_bytes)


def test_device_error(hoist_cli):
    with pytest.raises(hoist.DeviceError) as err:
        hoist.Runtime("cuda:1000")
    assert err.value.exit_code == 5
    assert_same_as_cli(err.value, hoist_cli, "--device", "cuda:1000", "/nonexistent")


def test_option_refused_by_the_library(np_pipeline, hoist_cli):
    with hoist.Runtime("host") as rt:
        with pytest.raises(hoist.InvalidArgument) as err:
            rt.load(np_pipeline, offload=["vae_nope"], progress=False)
    assert isinstance(err.value, ValueError) and err.value.status == "INVALID_ARGUMENT"
    # The library names its option fields, which are this package's keyword
    # arguments; the CLI says its flags instead.  Otherwise the same line.
    code, message = cli_load(hoist_cli, "--offload", "vae_nope", str(np_pipeline))
    assert err.value.exit_code == code
    assert err.value.message == message.replace("--offload", "`offload`")


@pytest.mark.parametrize("kwargs,exc", [
    ({"device": "tpu"}, ValueError),
    ({"device": 1.5}, TypeError),
    ({"device": "host", "threads": 0}, ValueError),
    ({"device": "host", "threads": "4"}, TypeError),
    ({"device": "host", "chunk": 5000}, ValueError),
    ({"device": "host", "capacity": "12 parsecs"}, ValueError),
    ({"device": "host", "capacity": 0}, ValueError),
    ({"device": "cuda:0", "capacity": "1G"}, ValueError),
])
def test_bad_runtime_arguments(kwargs, exc):
    with pytest.raises(exc):
        hoist.Runtime(**kwargs)


@pytest.mark.parametrize("kwargs,exc", [
    ({"dtype": "f8"}, ValueError),
    ({"dtype_for": {"vae": "int4"}}, ValueError),
    ({"dtype_for": 3}, TypeError),
    ({"on_oom": "swap"}, ValueError),
    ({"read": "telepathy"}, ValueError),
    ({"headroom": -1}, ValueError),
    ({"scratch": 100}, ValueError),
    ({"offload": ["a,b"]}, ValueError),
    ({"offload": [3]}, TypeError),
    ({"progress": 3}, TypeError),
    ({"variant": 16}, TypeError),
    ({"tensors": []}, ValueError),
    ({"tensors": 3}, TypeError),
    ({"tensors": ["a.*", 3]}, TypeError),
])
def test_bad_load_arguments(np_pipeline, kwargs, exc):
    with hoist.Runtime("host") as rt:
        with pytest.raises(exc):
            rt.load(np_pipeline, **kwargs)
        with rt.load(np_pipeline, progress=False):  # the runtime is still fine
            pass


def test_closed_runtime(np_pipeline):
    rt = hoist.Runtime("host")
    rt.close()
    rt.close()  # twice is fine
    for call in (lambda: rt.load(np_pipeline), lambda: rt.plan(np_pipeline), rt.mem_info,
                 lambda: rt.load_into(np_pipeline, "transformer", {})):
        with pytest.raises(ValueError, match="Runtime is closed"):
            call()


def test_a_file_that_is_not_safetensors(tmp_path, hoist_cli):
    other = tmp_path / "weights.bin"
    other.write_bytes(b"weights")
    with hoist.Runtime("host") as rt:
        with pytest.raises(hoist.InvalidInput, match="not a .safetensors file") as err:
            rt.load(other, progress=False)
        assert err.value.status == "BAD_PIPELINE"
        assert_same_as_cli(err.value, hoist_cli, str(other))


def test_status_table():
    """The classes of the statuses that cannot be provoked on the host."""
    assert error_class(-74) == (hoist.VerifyMismatch, 1)
    assert error_class(-72) == (hoist.DoesNotFit, 4)
    assert error_class(-70) == (hoist.DeviceError, 5)
    assert error_class(-53) == (hoist.InvalidInput, 3)
    assert error_class(-3) == (hoist.Error, 1)
    assert issubclass(hoist.InvalidArgument, ValueError)
