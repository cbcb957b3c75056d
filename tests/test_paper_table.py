"""benchmarks/paper_table.py: cells resume per net, the table is recomputed from the cell files, intervals are Welch's."""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import paper_table  # noqa: E402
from distill.core.hardware import machine_info  # noqa: E402


def _rendered_section() -> str:
    text = (REPO / "docs" / "RESULTS.md").read_text()
    match = re.search(r"<!-- paper-table:.*?-->\n(.*?)<!-- /paper-table -->", text, flags=re.S)
    assert match, "docs/RESULTS.md lost its paper-table markers"
    return match.group(1).strip()


def test_results_document_is_the_table_of_the_cell_files():
    """Every figure of the paper-table section is recomputed from the committed cell JSONs."""
    records = paper_table.load_records(paper_table.DEFAULT_DIR) if paper_table.DEFAULT_DIR.is_dir() else []
    section = _rendered_section()
    if not records:
        assert "no cell" in section.lower()
        return
    assert section.startswith(paper_table.render_markdown(records))
    for row in paper_table.table_rows(records):  # and the means are the runs' means
        assert row["mean"] == pytest.approx(statistics.fmean(row["runs"]))


def test_welch_interval_matches_scipy():
    from scipy import stats

    a, b = [54.1, 53.2, 55.0, 54.4, 53.9], [48.8, 49.5, 48.1, 49.0, 48.6]
    diff, low, high = paper_table.welch_interval(a, b)
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert diff == pytest.approx(statistics.fmean(a) - statistics.fmean(b))
    assert (low, high) == pytest.approx((ci.low, ci.high))
    assert paper_table.verdict((0.5, -0.2, 1.2)).endswith("tie")
    assert paper_table.verdict((2.0, 1.0, 3.0)).endswith("DataDAM wins")
    assert paper_table.welch_interval([1.0], [2.0, 3.0]) is None


@pytest.mark.slow
def test_smoke_study_runs_and_resumes_per_net(cifar_tree, tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILL_DATA_ROOT", str(cifar_tree))
    directory = tmp_path / "cells"
    argv = ["--smoke", "--dir", str(directory), "--nets", "2", "--epochs-dm", "2", "--epochs-official", "2",
            "--only", "dm-ipc1-it3-br8-s0,random-ipc1-s0", "--quiet"]
    assert paper_table.main(argv) == 0
    cell = json.loads((directory / "dm-ipc1-it3-br8-s0.json").read_text())
    assert cell["iterations"] == 3 and cell["batch_real"] == 8 and cell["distill"]["iterations"] == 3
    for protocol in ("dm", "official"):
        row = cell["evaluation"][protocol]
        assert len(row["runs"]) == 2 and row["epochs"] == 2 and row["engine"]["precision"] in ("fp32", "bf16")
        assert row["mean"] == pytest.approx(statistics.fmean(row["runs"]))
    # one net more on a rerun: the finished nets are kept, only the third trains
    before = cell["evaluation"]["dm"]["runs"]
    assert paper_table.main([*argv[:4], "3", *argv[5:]]) == 0
    after = json.loads((directory / "dm-ipc1-it3-br8-s0.json").read_text())["evaluation"]["dm"]["runs"]
    assert after[:2] == before and len(after) == 3
    cpus = json.loads((directory / "dm-ipc1-it3-br8-s0.json").read_text())["evaluation"]["dm"]["cpu_models"]
    assert len(cpus) == 3 and all(c == machine_info("cpu")["cpu_model"] for c in cpus)  # each net's machine
    assert not list((directory / "checkpoints").glob("*"))  # a finished set leaves no checkpoint behind
    # The set is saved beside its cell (what is committed): a rerun evaluates it, and does not distill again.
    assert (directory / "dm-ipc1-it3-br8-s0.pt").is_file() and not (directory / "work").exists()
    assert paper_table.main([*argv[:4], "4", *argv[5:]]) == 0
    again = json.loads((directory / "dm-ipc1-it3-br8-s0.json").read_text())
    assert again["evaluation"]["dm"]["runs"][:3] == after and again["distill"] == cell["distill"]
    # a finished cell whose set file is gone (a fresh clone of the ipc-50 cells) gets its set again, nets kept
    (directory / "dm-ipc1-it3-br8-s0.pt").unlink()
    assert paper_table.main([*argv[:4], "4", *argv[5:9], "--only", "dm-ipc1-it3-br8-s0", "--quiet"]) == 0
    remade = json.loads((directory / "dm-ipc1-it3-br8-s0.json").read_text())
    assert (directory / "dm-ipc1-it3-br8-s0.pt").is_file() and remade["evaluation"] == again["evaluation"]
    assert [r["iterations"] for r in remade["set_remade"]] == [3] and remade["distill"] == cell["distill"]
    # another epoch count for finished nets is refused, not mixed in
    assert paper_table.main([*argv[:4], "5", "--epochs-dm", "5", *argv[7:]]) == 2
    # the whole-dataset column: one net on every training image
    assert paper_table.main([*argv[:9], "--only", "whole-dataset-e1-s0", "--quiet"]) == 0
    whole = json.loads((directory / "whole-dataset-e1-s0.json").read_text())
    assert whole["distill"]["whole_dataset"] == 120 and len(whole["evaluation"]["dm"]["runs"]) == 1
    table = paper_table.render_markdown(paper_table.load_records(directory))
    assert "| DM, batch_real 8 | dm |" in table and "(26.0)" in table
    assert "Whole dataset: ConvNet-3 on all 120 training images" in table


@pytest.mark.slow
def test_sigint_to_a_background_study_stops_it_during_evaluation(cifar_tree, tmp_path):
    """A study started by a script (``cmd &``, SIGINT ignored) stops on ``kill -INT`` while a net trains, with the
    line that says what was kept: the distillation loop is not the only place that hears it."""
    argv = [sys.executable, str(REPO / "benchmarks" / "paper_table.py"), "--smoke", "--dir", str(tmp_path / "cells"),
            "--nets", "2", "--epochs-dm", "100000", "--only", "random-ipc1-s0", "--quiet"]
    env = {**os.environ, "DISTILL_DATA_ROOT": str(cifar_tree), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert proc.stderr.readline().startswith("cell random-ipc1-s0")
    record = tmp_path / "cells" / "random-ipc1-s0.json"  # written once the set is saved, before the first net
    deadline = time.monotonic() + 120
    while not record.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(2)  # into the first net's epochs (100,000 of them)
    proc.send_signal(signal.SIGINT)
    try:
        err = proc.communicate(timeout=30)[1]
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("SIGINT was ignored while a net trained")
    assert proc.returncode == 130, err
    assert "interrupted: random-ipc1-s0 stopped; kept random-ipc1-s0.pt (its set); the same command" in err, err


def test_status_names_the_finished_cells_the_checkpointed_one_and_the_next(tmp_path):
    import torch

    first, second = paper_table.CELLS[0], paper_table.CELLS[1]
    runs = {"runs": [20.0] * paper_table.NETS}
    (tmp_path / f"{first.name}.json").write_text(json.dumps({"evaluation": {p: runs for p in first.protocols}}))
    (tmp_path / "checkpoints").mkdir()
    torch.save({"iteration": 1234}, tmp_path / "checkpoints" / f"{second.name}.pt")
    status = paper_table.study_status(tmp_path)
    assert status.startswith(f"Where the study stands: 1 of {len(paper_table.CELLS)} cells finished.")
    assert f"In progress: `{second.name}`, iteration 1234 of {second.iterations}" in status
    third = paper_table.CELLS[2]  # the checkpointed cell is not also listed as next
    assert f"Next, in order of value: `{third.name}`" in status and first.name not in status
    assert status.count(second.name) == 1


def test_mtt_cell_trains_the_expert_epochs_its_segments_reach():
    """ipc 1: starts below epoch 2, 2 epochs matched: experts of 3 epochs serve every segment (the public code's
    first 3), and the run's config takes the cell's settings."""
    cell = paper_table.paper_cell("mtt", 1)
    assert dict(cell.settings) == {"num_experts": paper_table.MTT_EXPERTS, "expert_train_epochs": 3}
    assert cell.iterations == 5000 and cell.init == "real" and "experttrainepochs3" in cell.name
    dc = paper_table.paper_cell("dc", 1)
    assert (dc.iterations, dc.init, dc.settings) == (1000, "noise", ())
    row = {"method": "mtt", "variant": "paper", "init": "real", "settings": list(cell.settings), "epochs": 1}
    assert paper_table._label(row) == f"MTT, num experts {paper_table.MTT_EXPERTS}, expert train epochs 3"


def test_baselines_beyond_two_cores_run_a_stated_budget_that_the_table_shows():
    """CAFE at ipc 1 and DC/DSA/MTT at ipc 10 run ``CPU_ITERATIONS``; the count is in the name and in the cell."""
    cafe, dc1, dc10 = (paper_table.paper_cell(m, ipc) for m, ipc in (("cafe", 1), ("dc", 1), ("dc", 10)))
    assert (cafe.iterations, dc1.iterations, dc10.iterations) == (50, 1000, 100)
    assert "-it50-" in cafe.name and "-it100-" in dc10.name
    assert {c.name for c in (cafe, dc1, dc10)} <= {c.name for c in paper_table.CELLS}

    def record(method, ipc, iterations, runs):
        return {"name": f"{method}-{ipc}", "method": method, "variant": "paper", "ipc": ipc, "iterations": iterations,
                "batch_real": 256, "init": "real",
                "evaluation": {"dm": {"runs": runs, "epochs": 1000, "engine": {"precision": "bf16"}}}}

    text = paper_table.render_markdown([record("dm", 1, 8000, [25.0, 26.0]), record("dc", 1, 1000, [27.0, 28.0]),
                                        record("dc", 10, 100, [40.0, 41.0])])
    dc_row = next(line for line in text.splitlines() if line.startswith("| DC |"))
    assert "27.50 ± 0.50 (28.3) [1000 it]" in dc_row and "40.50 ± 0.50 (44.9) [100 it]" in dc_row
    assert "DataDAM/DM 8000 iterations" in text and "square brackets" in text
    dm_row = next(line for line in text.splitlines() if line.startswith("| DM |"))
    assert " it]" not in dm_row
    official = record("datadam", 1, 8000, [30.0, 31.0])
    official.update(variant="official", batch_real=64)
    rendered = paper_table.render_markdown([official])
    assert "| DataDAM (official), batch_real 64 | dm | 30.50 ± 0.50 (32.0) [2 of 5 nets] |" in rendered
    # the official variant is paired with DM, and with its control, DM through the same BatchNorm encoder
    control = record("dm", 1, 8000, [29.0, 30.0])
    control.update(batch_real=64, settings=[["norm", "batchnorm"]])
    text = paper_table.render_markdown([official, control, record("dm", 1, 8000, [25.0, 26.0])])
    assert "| DataDAM (official), batch_real 64 − DM | dm | 1 | +5.00 [" in text
    assert "| DataDAM (official), batch_real 64 − DM, norm batchnorm, batch_real 64 | dm | 1 | +1.00 [" in text
    # every other method against the paper's pair, the winner named
    text = paper_table.render_markdown([record("dm", 1, 8000, [25.0, 25.2, 24.8]), record("dc", 1, 1000, [28.0, 28.2, 27.8]),
                                        control])
    assert "| DC − DM | dm | 1 | +3.00 [" in text and text.rstrip().endswith("DC wins |")
    assert "| DC − DM, norm batchnorm" not in text  # a control is not the paper's DM
    assert "dm-ipc1-it8000-br64-normbatchnorm-s0" in {c.name for c in paper_table.CELLS}
    assert "datadam-official-ipc1-it8000-br64-s0" in {c.name for c in paper_table.CELLS}  # the public code's 64


def test_an_interrupted_cell_names_the_training_checkpoint_it_wrote(tmp_path, monkeypatch):
    """Forgetting's counting checkpoints in the cache, not in the study folder: the stop message must say so."""
    from distill.core import io
    from distill.core.store import save_entry

    cell = next(c for c in paper_table.CELLS if c.method == "forgetting")
    monkeypatch.setattr(io, "WRITTEN", [])
    assert paper_table.kept(tmp_path, cell) == "nothing: no iteration or net had finished"
    save_entry({"epoch": 55}, tmp_path / "cache" / "events-abc.checkpoint.pt")
    assert paper_table.kept(tmp_path, cell) == f"{tmp_path / 'cache' / 'events-abc.checkpoint.pt'} (a training checkpoint)"


def test_forgetting_counting_cost_is_stated_once_for_every_ipc():
    """The counting run is forgetting's cost, shared by its ipc 1/10/50 cells: one line, not one a cell."""
    def record(ipc):
        return {"name": f"forgetting-ipc{ipc}-s0", "method": "forgetting", "variant": "paper", "ipc": ipc,
                "iterations": 8000, "batch_real": 256, "init": "real",
                "distill": {"seconds": 2.0, "counting_seconds": 9000.0, "counting_epochs": 200,
                            "counting_images": 60},
                "evaluation": {"dm": {"runs": [13.0, 14.0], "epochs": 1000, "engine": {"precision": "bf16"}}}}

    text = paper_table.render_markdown([record(1), record(10)])
    assert text.count("Forgetting's events were counted once for every ipc, over 200 epochs") == 1
    assert "ConvNet-3 on all 60 training images: 2.50 h in all its sittings" in text
    assert "counted once" not in paper_table.render_markdown([{**record(1), "distill": {"seconds": 2.0}}])
