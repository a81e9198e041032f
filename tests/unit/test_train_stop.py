"""A `recprice train` stopped by SIGTERM removes its temporary states files."""

import os
import signal
import subprocess
import sys
import time

from encoders.model import save_model_dir, tiny_random_model
from tests.unit.test_holdout import write_log


def _states_files(tmp):
    return list(tmp.glob("recprice-train-*/*.states"))


def test_sigterm_during_training_removes_the_states_folder(tmp_path):
    files = write_log(tmp_path)
    base = tmp_path / "base"
    save_model_dir(tiny_random_model(seed=3, history=4), base)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    command = [sys.executable, "-m", "streams", "train", *files, "--out", str(tmp_path / "m")]
    command += ["--base", str(base), "--epochs", "1000", "--patience", "1000"]
    command += ["--batch-size", "8", "--user-max-length", "24", "--item-max-length", "12"]
    command += ["--device", "cpu", "--no-progress", "--history", "4", "--threads", "1"]
    command += ["--lower-cache", "disk"]
    env = dict(os.environ, TMPDIR=str(tmp), HF_HUB_OFFLINE="1")
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not _states_files(tmp):
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "no states file was written"
            time.sleep(0.2)
        time.sleep(1.0)  # training steps, reading the states file
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    finally:
        proc.kill()
    assert code == 128 + signal.SIGTERM, proc.stdout.read().decode()
    assert not list(tmp.glob("recprice-train-*")), "the states folder was left behind"
