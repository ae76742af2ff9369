"""hoist.attach on the host backend: a `hoist serve --device host` child
shares its pipeline through memfd arenas, and this process maps them.
Every tensor bit-identical to safetensors.numpy and zero-copy; lifetime
(detach while arrays live: the server keeps the client until the last
one dies); reload and shutdown events; a killed server; no-wait and
timeout while the server loads; Ctrl-C during the wait; offloaded
components through prepare/release; every error type."""

import gc
import os
import signal
import threading
import time

import numpy as np
import pytest
from safetensors.numpy import load_file

import hoist
from conftest import component_files, make_pipeline
from serving import Server


@pytest.fixture(scope="module")
def flux_f32(hoist_cli, tmp_path_factory):
    """FLUX.1-dev-shaped pipeline in F32 (numpy reads every tensor), 7 MB."""
    out = tmp_path_factory.mktemp("flux-f32")
    import subprocess
    subprocess.run([str(hoist_cli), "make-pipeline", "--preset", "flux1-dev", "--scale", "0.0001",
                    "--dtype", "f32", "--seed", "5", "--force", str(out)], check=True,
                   stdout=subprocess.DEVNULL)
    return out


@pytest.fixture(scope="module")
def served(hoist_cli, flux_f32):
    s = Server(hoist_cli, flux_f32, "--device", "host")
    yield s
    s.kill()


def reference(folder):
    want = {}
    for f in component_files(folder):
        want.update(load_file(str(f)))
    return want


def test_every_tensor_bit_identical_and_zero_copy(served, flux_f32):
    with hoist.attach(served.sock) as att:
        assert att.device == "host" and att.generation == 1
        assert list(att) == ["transformer", "text_encoder_2", "vae", "text_encoder"]
        total = 0
        for component, sd in att.items():
            want = reference(flux_f32 / component)
            assert set(sd) == set(want)
            assert list(sd) == sorted(want)  # name order
            for name in sd:
                t = sd[name]
                arr = np.from_dlpack(t)
                assert arr.dtype == want[name].dtype and arr.shape == want[name].shape
                assert arr.tobytes() == want[name].tobytes(), f"{component}/{name}"
                if t.nbytes:
                    assert arr.ctypes.data == t.device_ptr  # the mapping itself
                total += 1
        assert total == sum(c["tensor_count"] for c in att.components)
        assert att.total_bytes == sum(c["bytes"] for c in att.components) > 0


def test_numpy_of_an_attached_tensor_is_read_only(served):
    with hoist.attach(served.sock) as att:
        arr = att["vae"]["decoder.conv_in.weight"].numpy()
        assert not arr.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            arr[...] = 0


def test_dtypes_of_a_mixed_pipeline(hoist_cli, np_pipeline):
    s = Server(hoist_cli, np_pipeline, "--device", "host")
    try:
        with hoist.attach(s.sock) as att:
            for component in ("transformer", "text_encoder"):
                want = load_file(str(np_pipeline / component / "model.safetensors"))
                for name, w in want.items():
                    got = att[component][name].numpy()
                    assert got.dtype == w.dtype and np.array_equal(got, w), f"{component}/{name}"
            assert att["text_encoder"]["mask"].dtype == "BOOL"
    finally:
        s.kill()


def test_detach_while_arrays_live(served, flux_f32):
    want = reference(flux_f32 / "text_encoder")
    served.wait_clients(0)
    att = hoist.attach(served.sock)
    served.wait_clients(1)
    emb = np.from_dlpack(att["text_encoder"]["text_model.embeddings.token_embedding.weight"])
    held = att["text_encoder"]["text_model.final_layer_norm.weight"].numpy()
    tensor = att["vae"]["decoder.conv_in.weight"]
    exported = {c["name"]: c["exported"] for c in att.components}
    assert exported["text_encoder"] == 2 and exported["vae"] == 0
    att.detach()
    assert att.closed
    # The mapping stays, and the server keeps this client, while arrays live.
    assert np.array_equal(emb, want["text_model.embeddings.token_embedding.weight"])
    served.wait_clients(1)
    with pytest.raises(ValueError, match="detached"):
        tensor.__dlpack__()
    with pytest.raises(ValueError, match="detached"):
        att.components
    del emb
    served.wait_clients(1)
    cycle = [held]
    cycle.append(cycle)
    del held, cycle
    gc.collect()
    served.wait_clients(0)


def test_arrays_die_on_another_thread(served):
    att = hoist.attach(served.sock)
    arrays = [np.from_dlpack(att["transformer"][n]) for n in list(att["transformer"])[:50]]
    att.detach()
    served.wait_clients(1)
    worker = threading.Thread(target=arrays.clear)
    worker.start()
    worker.join()
    served.wait_clients(0)


def test_many_attach_detach_cycles_leave_nothing(served):
    served.wait_clients(0)
    for _ in range(100):
        with hoist.attach(served.sock) as att:
            np.from_dlpack(att["vae"]["decoder.conv_out.bias"])
    served.wait_clients(0)
    assert len(os.listdir(f"/proc/{os.getpid()}/fd")) < 64


def test_reload_event_and_new_generation(hoist_cli, flux_f32, tmp_path):
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    s = Server(hoist_cli, flux_f32, "--device", "host", "--token-file", token)
    try:
        old = hoist.attach(s.sock)
        arr = np.from_dlpack(old["vae"]["decoder.conv_out.weight"])
        before = arr.copy()
        assert old.poll() == 0
        status, _ = s.post("/v1/reload")
        assert status in (200, 202)
        assert s.event("reloaded", 60) is not None
        end = time.monotonic() + 10
        events = 0
        while not events & hoist.RELOADED and time.monotonic() < end:
            events |= old.poll()
            time.sleep(0.01)
        assert events & hoist.RELOADED
        with hoist.attach(s.sock) as new:
            assert new.generation == 2 and old.generation == 1
            assert np.array_equal(new["vae"]["decoder.conv_out.weight"].numpy(), before)
        # The old generation stays mapped for the old client.
        assert np.array_equal(arr, before)
        old.detach()
        del arr
        s.wait_clients(0)
    finally:
        s.kill()


def test_shutdown_event_then_detach_lets_the_server_exit(hoist_cli, flux_f32):
    s = Server(hoist_cli, flux_f32, "--device", "host", "--drain", "20")
    try:
        att = hoist.attach(s.sock)
        arr = att["vae"]["decoder.conv_out.bias"].numpy()
        s.proc.send_signal(signal.SIGTERM)
        end = time.monotonic() + 10
        events = 0
        while not events & hoist.SHUTDOWN and time.monotonic() < end:
            events |= att.poll()
            time.sleep(0.01)
        assert events & hoist.SHUTDOWN
        # No new clients: the socket is gone (or refuses while it goes).
        with pytest.raises((hoist.Disconnected, hoist.InvalidInput)):
            hoist.attach(s.sock, wait=False)
        t0 = time.monotonic()
        att.detach()
        del arr
        assert s.proc.wait(15) == 0
        assert time.monotonic() - t0 < 15
    finally:
        s.kill()


def test_killed_server(hoist_cli, flux_f32):
    want = reference(flux_f32 / "vae")["decoder.conv_out.weight"]
    s = Server(hoist_cli, flux_f32, "--device", "host", "--offload", "text_encoder")
    try:
        att = hoist.attach(s.sock)
        arr = att["vae"]["decoder.conv_out.weight"].numpy()
        s.proc.kill()
        s.proc.wait()
        end = time.monotonic() + 10
        events = 0
        while not events & hoist.CLOSED and time.monotonic() < end:
            events |= att.poll()
            time.sleep(0.01)
        assert events & hoist.CLOSED
        # Host memory outlives the server: the mapping is this process's.
        assert np.array_equal(arr, want)
        with pytest.raises(hoist.Disconnected):
            att.prepare("text_encoder")
        del arr
        att.detach()  # nothing to tell: returns at once
        # The socket file is left behind: nobody listens on it.
        with pytest.raises(hoist.Disconnected, match="cannot connect"):
            hoist.attach(s.sock, wait=False)
    finally:
        s.kill()


@pytest.fixture
def slow_server(hoist_cli, flux_f32):
    """A server that loads the 7 MB pipeline at 1 MB/s."""
    s = Server(hoist_cli, flux_f32, "--device", "host", "--rate", "1M", wait_ready=False)
    yield s
    s.kill()


def test_no_wait_and_timeout_while_loading(slow_server):
    with pytest.raises(hoist.NotReady) as err:
        hoist.attach(slow_server.sock, wait=False)
    assert err.value.status == "NOT_READY" and err.value.exit_code == 1
    t0 = time.monotonic()
    with pytest.raises(hoist.NotReady, match="still loading"):
        hoist.attach(slow_server.sock, timeout=0.4)
    assert 0.35 < time.monotonic() - t0 < 3
    with hoist.attach(slow_server.sock, timeout=120) as att:  # waits for the load
        assert slow_server.event("ready", 5) is not None
        assert att["vae"]["decoder.conv_out.bias"].numpy().size > 0


def test_ctrl_c_during_the_wait(slow_server):
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        hoist.attach(slow_server.sock)
    assert time.monotonic() - t0 < 2
    timer.join()
    # Nothing left connected: the server holds no client of ours.
    assert slow_server.clients() == 0


def test_prepare_and_release_an_offloaded_component(hoist_cli, flux_f32):
    want = reference(flux_f32 / "text_encoder")
    s = Server(hoist_cli, flux_f32, "--device", "host", "--offload", "text_encoder")
    try:
        with hoist.attach(s.sock) as att:
            info = {c["name"]: c for c in att.components}
            assert info["text_encoder"]["residency"] == "offload"
            assert info["text_encoder"]["device_bytes"] == 0
            t = att["text_encoder"]["text_model.final_layer_norm.weight"]
            with pytest.raises(hoist.Error, match="prepare"):
                t.device_ptr
            with pytest.raises(hoist.Error, match="prepare"):
                t.__dlpack__()
            assert att.prepare("text_encoder") is True
            assert att.prepare("text_encoder") is False
            assert att.prepare("vae") is False  # resident
            arr = t.numpy()
            assert np.array_equal(arr, want["text_model.final_layer_norm.weight"])
            with pytest.raises(hoist.Busy, match="1 exported tensor is still alive"):
                att.release("text_encoder")
            del arr
            assert att.release("text_encoder") is True
            assert att.release("text_encoder") is False
            with pytest.raises(KeyError):
                att.prepare("no_such")
    finally:
        s.kill()


def test_errors(hoist_cli, flux_f32, tmp_path):
    with pytest.raises(hoist.InvalidInput, match="cannot connect") as err:
        hoist.attach(tmp_path / "none.sock")
    assert err.value.exit_code == 3
    with pytest.raises(ValueError):
        hoist.attach("")
    with pytest.raises(TypeError):
        hoist.attach(tmp_path / "x.sock", timeout="1")
    with pytest.raises(ValueError):
        hoist.attach(tmp_path / "x.sock", timeout=0)
    # The server's load failure comes back as its exception and message.
    s = Server(hoist_cli, flux_f32, "--device", "host", "--capacity", "1M", "--on-failure",
               "stay", wait_ready=False)
    try:
        assert s.event("failed", 30) is not None
        with pytest.raises(hoist.DoesNotFit) as err:
            hoist.attach(s.sock)
        assert err.value.exit_code == 4 and "transformer" in str(err.value)
    finally:
        s.kill()


@pytest.mark.skipif(os.geteuid() != 0, reason="SKIP: needs root to act as another uid")
def test_another_uid_is_denied(served):
    pid = os.fork()
    if pid == 0:  # the child turns into nobody and tries
        code = 3
        try:
            os.setgid(65534)
            os.setuid(65534)
            hoist.attach(served.sock, wait=False)
            code = 1
        except hoist.Denied:
            code = 0
        except BaseException:
            code = 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
