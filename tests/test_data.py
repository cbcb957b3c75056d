import pytest
import torch
from torchvision.io import write_png

from distill.core.data import denormalise, from_tensors, load_dataset
from distill.core.errors import DistillError


def test_class_index_and_subset_keep_original_labels(tiny_dataset):
    assert tiny_dataset.num_classes == 3
    assert tiny_dataset.labels[tiny_dataset.indices_of(1)].eq(1).all()
    sub = tiny_dataset.subset([2, 0])
    assert len(sub) == 40 and set(sub.labels.tolist()) == {0, 2} and sub.class_names == ["a", "b", "c"]
    assert len(sub.indices_of(1)) == 0


def test_real_cifar10_tree_loads_normalised_in_class_order(cifar_tree):
    train = load_dataset("cifar10", "train", data_root=cifar_tree)
    assert train.images.shape == (120, 3, 32, 32)
    assert train.class_names[0] == "airplane" and train.class_names[-1] == "truck"
    assert torch.bincount(train.labels).tolist() == [12] * 10
    pixels = denormalise(train.images, train.mean, train.std)
    assert pixels.min() >= 0 and pixels.max() <= 1 and pixels.std() > 0.1
    again = load_dataset("cifar10", "train", data_root=cifar_tree)  # from the decoded cache
    assert torch.equal(again.images, train.images)
    folder = load_dataset("imagefolder", "test", data_root=cifar_tree)
    assert len(folder) == 40 and folder.mean != train.mean  # its own statistics


def _write_tree(root, sizes):
    for cls, size in sizes.items():
        (root / "train" / cls).mkdir(parents=True)
        if size:
            write_png(torch.zeros(3, size, size, dtype=torch.uint8), str(root / "train" / cls / "0.png"))


@pytest.mark.parametrize("setup,message", [
    (lambda r: None, "does not exist"),
    (lambda r: (r / "train").mkdir(parents=True), "no class folders"),
    (lambda r: _write_tree(r, {"cat": 8, "dog": 0}), "has no images"),
    (lambda r: _write_tree(r, {"cat": 8, "dog": 16}), "resize the tree"),
    (lambda r: (_write_tree(r, {"cat": 8}), (r / "train" / "cat" / "1.jpg").write_bytes(b"junk")), "corrupt"),
    (lambda r: (_write_tree(r, {"cat": 8}), (r / "train" / "cat" / "1.jpg").write_bytes(b"")), "1.jpg; delete or"),
])
def test_bad_folders_give_one_clear_error(tmp_path, setup, message):
    root = tmp_path / "data"
    setup(root)
    with pytest.raises(DistillError, match=message) as info:
        load_dataset("imagefolder", "train", data_root=root)
    assert "\n" not in str(info.value)


def test_wrong_classes_for_cifar10_and_unknown_names(tmp_path):
    _write_tree(tmp_path, {"cat": 8, "dog": 8})
    with pytest.raises(DistillError, match="--dataset imagefolder"):
        load_dataset("cifar10", "train", data_root=tmp_path)
    with pytest.raises(DistillError, match="unknown dataset 'mnist'"):
        load_dataset("mnist")
    with pytest.raises(DistillError, match="unknown split"):
        load_dataset("cifar10", "val", data_root=tmp_path)


def test_from_tensors_rejects_mismatched_shapes():
    with pytest.raises(DistillError, match="matching tensors"):
        from_tensors(torch.zeros(3, 3, 8, 8), torch.zeros(2))


def test_decoded_cache_sees_a_moved_and_an_edited_image(tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILL_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "data"
    for cls in ("cat", "dog"):
        (root / "train" / cls).mkdir(parents=True)
        for i in range(3):
            write_png(torch.full((3, 4, 4), 10 * i, dtype=torch.uint8), str(root / "train" / cls / f"{cls}{i}.png"))
    before = load_dataset("imagefolder", "train", data_root=root)
    assert torch.bincount(before.labels).tolist() == [3, 3]
    # Same file count, same first and last names: only a key over the whole listing notices.
    (root / "train" / "cat" / "cat1.png").rename(root / "train" / "dog" / "cat1.png")
    write_png(torch.full((3, 4, 4), 200, dtype=torch.uint8), str(root / "train" / "dog" / "dog1.png"))
    after = load_dataset("imagefolder", "train", data_root=root)
    assert torch.bincount(after.labels).tolist() == [2, 4]
    dog1 = [i for i, p in enumerate(sorted((root / "train" / "dog").iterdir())) if p.name == "dog1.png"][0]
    pixels = denormalise(after.images_of(1), after.mean, after.std)[dog1]
    assert pixels.mul(255).round().eq(200).all()
