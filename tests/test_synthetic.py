import pytest
import torch

from distill import DistillError, SyntheticSet


def make_set(classes=(0, 2), ipc=3):
    g = torch.Generator().manual_seed(0)
    return SyntheticSet(images=torch.randn(len(classes) * ipc, 3, 8, 8, generator=g),
                        labels=torch.tensor(classes).repeat_interleave(ipc), class_ids=list(classes),
                        class_names=["a", "b", "c", "d"], mean=(0.5, 0.5, 0.5), std=(0.2, 0.2, 0.2), ipc=ipc,
                        method="datadam", config={"iterations": 7}, seed=4, iterations=7, seconds=1.5,
                        git_revision="abc")


def test_round_trip_keeps_every_field(tmp_path):
    s = make_set()
    s.save(tmp_path / "s.pt")
    t = SyntheticSet.load(tmp_path / "s.pt")
    assert torch.equal(s.images, t.images) and torch.equal(s.labels, t.labels)
    for name in ("class_ids", "class_names", "mean", "std", "ipc", "method", "config", "seed", "iterations",
                 "seconds", "git_revision"):
        assert getattr(s, name) == getattr(t, name)
    assert not list(tmp_path.glob(".*tmp"))  # the atomic write leaves no temporary file


def test_subset_take_and_merge_keep_class_blocks():
    s = make_set(classes=(0, 2, 3), ipc=3)
    sub = s.subset([3, 0])
    assert sub.class_ids == [3, 0] and sub.labels.tolist() == [3, 3, 3, 0, 0, 0]
    assert torch.equal(sub.images[:3], s.images[6:9])
    small = s.take(1)
    assert small.ipc == 1 and torch.equal(small.images, s.images[[0, 3, 6]])
    merged = SyntheticSet.merge([s.subset([0]), s.subset([2, 3])])
    assert torch.equal(merged.images, s.images) and merged.class_ids == [0, 2, 3]
    assert s.num_bytes == 9 * 3 * 8 * 8 * 4


def test_subset_of_a_missing_class_names_it():
    with pytest.raises(DistillError, match=r"no images for class\(es\) \[1\]"):
        make_set().subset([1])


def test_merge_refuses_mismatched_sets():
    a = make_set(classes=(0,), ipc=3)
    b = make_set(classes=(1,), ipc=2)
    with pytest.raises(DistillError, match="different ipc"):
        SyntheticSet.merge([a, b])


@pytest.mark.parametrize("corrupt,message", [
    (lambda p: None, "does not exist"),
    (lambda p: p.write_bytes(b"not a torch file"), "not a readable synthetic set"),
    (lambda p: torch.save({"images": 1}, p), "no format_version"),
    (lambda p: torch.save({"format_version": 99}, p), "format version 99"),
    (lambda p: torch.save({"format_version": 1, "images": torch.zeros(1)}, p), "lacks field"),
])
def test_load_errors_name_the_problem(tmp_path, corrupt, message):
    path = tmp_path / "bad.pt"
    corrupt(path)
    with pytest.raises(DistillError, match=message):
        SyntheticSet.load(path)


def test_inconsistent_contents_are_refused(tmp_path):
    """Without a digest (a file from before digests, or edited with its digest removed) the fields are still checked."""
    s = make_set()
    state = s.state_dict()
    del state["digest"]
    state["labels"] = state["labels"].flip(0)
    torch.save(state, tmp_path / "s.pt")
    with pytest.raises(DistillError, match="not grouped by class_ids"):
        SyntheticSet.load(tmp_path / "s.pt")
    state = s.state_dict()
    del state["digest"]
    state["images"] = state["images"].clone()
    state["images"][0, 0, 0, 0] = float("nan")
    torch.save(state, tmp_path / "s.pt")
    with pytest.raises(DistillError, match="NaN"):
        SyntheticSet.load(tmp_path / "s.pt")


def test_an_edited_set_fails_its_digest(tmp_path):
    state = make_set().state_dict()
    state["images"] = torch.zeros_like(state["images"])  # right shape, other pixels
    torch.save(state, tmp_path / "s.pt")
    with pytest.raises(DistillError, match="does not match the digest of its content"):
        SyntheticSet.load(tmp_path / "s.pt")


def test_png_grid_has_one_row_per_class(tmp_path):
    from torchvision.io import read_image

    make_set(classes=(0, 1, 2), ipc=2).to_png(tmp_path / "g.png")
    img = read_image(str(tmp_path / "g.png"))
    assert img.shape == (3, 3 * 10 + 2, 2 * 10 + 2)  # 8 px images with 2 px padding
