"""Dataset readers, normalisation, augmentation and loaders, on tiny files in the real formats."""

import collections
import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dietsnn_deploy.data import (
    DATASETS,
    dataset_info,
    load_dataset,
    make_loader,
    random_crop,
)
from dietsnn_deploy.errors import DeployError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


# --- writers of the real on-disk formats ------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding of a uint8 array: magic 0x000008<ndim>, big-endian sizes, values."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_split(folder: Path, split: str, images: np.ndarray, labels: np.ndarray, gz=True):
    prefix = "train" if split == "train" else "t10k"
    for base, array in (
        (f"{prefix}-images-idx3-ubyte", images),
        (f"{prefix}-labels-idx1-ubyte", labels),
    ):
        data = idx_bytes(array)
        if gz:
            (folder / f"{base}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / base).write_bytes(data)


def numbered_images(count: int, side: int = 28) -> np.ndarray:
    """Image i has pixel (r, c) = (i * 20 + r + 2 * c) mod 256: distinct and asymmetric."""
    rows, cols = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
    return np.stack([(i * 20 + rows + 2 * cols) % 256 for i in range(count)]).astype(np.uint8)


def write_cifar_batch(path: Path, data: np.ndarray, labels: list[int], label_key=b"labels"):
    batch = {b"batch_label": b"test", label_key: labels, b"data": data, b"filenames": []}
    path.write_bytes(pickle.dumps(batch, protocol=2))


def cifar_data(count: int, offset: int) -> np.ndarray:
    """(count, 3072) uint8 rows; row i holds (offset + i + 7 * channel + j) mod 256 at j."""
    columns = np.arange(3072)
    channel = columns // 1024
    rows = [(offset + i + 7 * channel + columns) % 256 for i in range(count)]
    return np.stack(rows).astype(np.uint8)


def expected(raw: np.ndarray, mean, std, pixel_max=255.0) -> torch.Tensor:
    mean = torch.tensor(mean)[:, None, None]
    std = torch.tensor(std)[:, None, None]
    return (torch.from_numpy(raw.astype(np.float32)) / pixel_max - mean) / std


def unnormalise(image: torch.Tensor, mean, std) -> np.ndarray:
    mean = torch.tensor(mean)[:, None, None]
    std = torch.tensor(std)[:, None, None]
    return torch.round((image * std + mean) * 255).to(torch.int64).numpy()


# --- IDX (MNIST, Fashion-MNIST) ---------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_idx_values_labels_and_normalisation(tmp_path, gz):
    images, labels = numbered_images(3), np.array([7, 0, 9], dtype=np.uint8)
    write_idx_split(tmp_path, "test", images, labels, gz=gz)
    ds = load_dataset("mnist", "test", data_dir=tmp_path)
    assert len(ds) == 3
    for i in range(3):
        image, label = ds[i]
        assert image.shape == (1, 28, 28) and image.dtype == torch.float32
        assert label == int(labels[i]) and isinstance(label, int)
        torch.testing.assert_close(image, expected(images[i][None], (0.1307,), (0.3081,)))


def test_fashion_mnist_uses_its_own_normalisation(tmp_path):
    images, labels = numbered_images(2), np.array([1, 2], dtype=np.uint8)
    write_idx_split(tmp_path, "train", images, labels)
    image, label = load_dataset("fashion-mnist", "train", data_dir=tmp_path)[1]
    assert label == 2
    torch.testing.assert_close(image, expected(images[1][None], (0.2860,), (0.3530,)))


def test_missing_idx_files_say_where_and_what(tmp_path):
    with pytest.raises(DeployError) as err:
        load_dataset("fashion-mnist", "train", data_dir=tmp_path)
    message = str(err.value)
    assert f"no train-images-idx3-ubyte(.gz) in {tmp_path}" in message
    assert "train-labels-idx1-ubyte(.gz)" in message
    assert "install dataset-fashion-mnist or pass --data-dir" in message


def test_bad_idx_magic(tmp_path):
    write_idx_split(tmp_path, "train", numbered_images(2), np.array([0, 1], dtype=np.uint8))
    wrong = idx_bytes(np.zeros((2, 28), dtype=np.uint8))  # magic 0x00000802
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(wrong))
    with pytest.raises(DeployError, match=r"bad IDX magic 0x00000802 \(expected 0x00000803\)"):
        load_dataset("mnist", "train", data_dir=tmp_path)


def test_truncated_idx_data(tmp_path):
    write_idx_split(tmp_path, "test", numbered_images(2), np.array([0, 1], dtype=np.uint8), False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DeployError, match="IDX data has 1563 bytes but the header says 2x28x28"):
        load_dataset("mnist", "test", data_dir=tmp_path)


def test_truncated_gzip(tmp_path):
    write_idx_split(tmp_path, "test", numbered_images(2), np.array([0, 1], dtype=np.uint8))
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(DeployError, match="t10k-images-idx3-ubyte.gz: cannot read IDX file"):
        load_dataset("mnist", "test", data_dir=tmp_path)


def test_idx_label_count_mismatch_and_range(tmp_path):
    write_idx_split(tmp_path, "test", numbered_images(3), np.array([0, 1], dtype=np.uint8))
    with pytest.raises(DeployError, match="2 labels for 3 images"):
        load_dataset("mnist", "test", data_dir=tmp_path)
    write_idx_split(tmp_path, "test", numbered_images(2), np.array([0, 10], dtype=np.uint8))
    with pytest.raises(DeployError, match=r"labels outside 0\.\.9"):
        load_dataset("mnist", "test", data_dir=tmp_path)


def test_idx_wrong_image_size(tmp_path):
    write_idx_split(tmp_path, "test", numbered_images(2, side=8), np.array([0, 1], dtype=np.uint8))
    with pytest.raises(DeployError, match="images are 8x8, expected 28x28"):
        load_dataset("mnist", "test", data_dir=tmp_path)


# --- CIFAR ------------------------------------------------------------------------------------


def write_cifar10(folder: Path) -> tuple[np.ndarray, list[int]]:
    folder.mkdir(parents=True, exist_ok=True)
    all_data, all_labels = [], []
    for i in range(1, 6):
        data, labels = cifar_data(2, offset=10 * i), [i, 9 - i]
        write_cifar_batch(folder / f"data_batch_{i}", data, labels)
        all_data.append(data)
        all_labels += labels
    write_cifar_batch(folder / "test_batch", cifar_data(1, offset=99), [3])
    return np.concatenate(all_data), all_labels


@pytest.mark.parametrize("nested", [False, True])
def test_cifar10_batches_layout_and_normalisation(tmp_path, nested):
    folder = tmp_path / "cifar-10-batches-py" if nested else tmp_path
    data, labels = write_cifar10(folder)
    ds = load_dataset("cifar10", "train", data_dir=tmp_path)
    info = dataset_info("cifar10")
    assert len(ds) == 10
    assert [ds[i][1] for i in range(10)] == labels
    image, _ = ds[7]
    assert image.shape == (3, 32, 32)
    raw = data[7].reshape(3, 32, 32)  # channel planes, each 32 rows of 32
    assert raw[1, 2, 3] == (10 * 4 + 1 + 7 + 1024 + 2 * 32 + 3) % 256
    torch.testing.assert_close(image, expected(raw, info.mean, info.std))
    test_image, test_label = load_dataset("cifar10", "test", data_dir=tmp_path)[0]
    assert test_label == 3
    torch.testing.assert_close(
        test_image, expected(cifar_data(1, 99)[0].reshape(3, 32, 32), info.mean, info.std)
    )


def test_cifar100_reads_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    batch = {b"data": cifar_data(2, 0), b"fine_labels": [99, 42], b"coarse_labels": [19, 1]}
    (folder / "test").write_bytes(pickle.dumps(batch, protocol=2))
    ds = load_dataset("cifar100", "test", data_dir=tmp_path)
    assert [ds[0][1], ds[1][1]] == [99, 42]
    assert dataset_info("cifar100").num_classes == 100


def test_cifar_missing_file(tmp_path):
    write_cifar10(tmp_path)
    (tmp_path / "data_batch_3").unlink()
    with pytest.raises(DeployError, match=f"cifar10: no data_batch_3 in {tmp_path}"):
        load_dataset("cifar10", "train", data_dir=tmp_path)


def test_cifar_wrong_keys_and_shapes(tmp_path):
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": cifar_data(1, 0)}))
    with pytest.raises(DeployError, match="test_batch: CIFAR batch lacks key"):
        load_dataset("cifar10", "test", data_dir=tmp_path)
    write_cifar_batch(tmp_path / "test_batch", np.zeros((2, 100), dtype=np.uint8), [0, 1])
    with pytest.raises(DeployError, match=r"CIFAR data is uint8 \(2, 100\)"):
        load_dataset("cifar10", "test", data_dir=tmp_path)
    write_cifar_batch(tmp_path / "test_batch", cifar_data(2, 0), [0])
    with pytest.raises(DeployError, match="1 labels for 2 images"):
        load_dataset("cifar10", "test", data_dir=tmp_path)


def test_cifar_truncated_and_hostile_pickles(tmp_path):
    write_cifar_batch(tmp_path / "test_batch", cifar_data(2, 0), [0, 1])
    path = tmp_path / "test_batch"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DeployError, match="test_batch: cannot unpickle CIFAR batch"):
        load_dataset("cifar10", "test", data_dir=tmp_path)
    hostile = {b"data": cifar_data(1, 0), b"labels": [0], b"extra": collections.Counter()}
    path.write_bytes(pickle.dumps(hostile))
    with pytest.raises(DeployError, match="refusing to load collections.Counter"):
        load_dataset("cifar10", "test", data_dir=tmp_path)


# --- augmentation -----------------------------------------------------------------------------


def window_offset(output: np.ndarray, original: np.ndarray, pad: int, flipped: bool):
    """(top, left) of the window of the zero-padded ``original`` equal to ``output``, or None."""
    padded = np.pad(original, ((0, 0), (pad, pad), (pad, pad)))
    height, width = original.shape[1:]
    for top in range(2 * pad + 1):
        for left in range(2 * pad + 1):
            window = padded[:, top : top + height, left : left + width]
            if np.array_equal(output, window[:, :, ::-1] if flipped else window):
                return top, left
    return None


def test_random_crop_is_a_window_of_the_padded_image():
    images = torch.from_numpy(numbered_images(4, side=6))[:, None]
    crops = random_crop(
        images.repeat(8, 1, 1, 1), pad=2, generator=torch.Generator().manual_seed(0)
    )
    assert crops.shape == (32, 1, 6, 6)
    offsets = set()
    for k, crop in enumerate(crops):
        offset = window_offset(crop.numpy(), images[k % 4].numpy(), 2, flipped=False)
        assert offset is not None
        offsets.add(offset)
    assert len(offsets) > 5  # independent draws per image, not one shared offset


def test_augmented_mnist_crops_but_never_flips(tmp_path):
    images = numbered_images(1)
    write_idx_split(tmp_path, "train", images, np.array([4], dtype=np.uint8))
    ds = load_dataset("mnist", "train", data_dir=tmp_path, augment=True)
    batch, labels = ds[[0] * 32]
    assert batch.shape == (32, 1, 28, 28) and labels.tolist() == [4] * 32
    offsets = set()
    for image in batch:
        raw = unnormalise(image, (0.1307,), (0.3081,))
        offset = window_offset(raw, images[0][None], 2, flipped=False)
        assert offset is not None
        offsets.add(offset)
    assert len(offsets) > 1


def test_augmented_cifar_crops_and_flips(tmp_path):
    write_cifar_batch(tmp_path / "test_batch", cifar_data(1, 0), [5])
    ds = load_dataset("cifar10", "test", data_dir=tmp_path, augment=True)
    info = dataset_info("cifar10")
    original = cifar_data(1, 0)[0].reshape(3, 32, 32)
    batch, _ = ds[[0] * 16]
    assert batch.shape == (16, 3, 32, 32)
    flips = []
    for image in batch:
        raw = unnormalise(image, info.mean, info.std)
        plain = window_offset(raw, original, 4, flipped=False)
        mirrored = window_offset(raw, original, 4, flipped=True)
        assert (plain is None) != (mirrored is None)
        flips.append(mirrored is not None)
    assert any(flips) and not all(flips)


def test_no_augmentation_is_identity(tmp_path):
    write_cifar_batch(tmp_path / "test_batch", cifar_data(2, 0), [5, 6])
    ds = load_dataset("cifar10", "test", data_dir=tmp_path, augment=False)
    torch.testing.assert_close(ds[[1, 1]][0][0], ds[1][0])
    torch.testing.assert_close(ds[[0, 1]][0][1], ds[1][0])


# --- digits -----------------------------------------------------------------------------------


def test_digits_split_and_normalisation():
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert (len(train), len(test)) == (1437, 360)
    info = dataset_info("digits")
    assert info.in_shape == (1, 8, 8) and info.num_classes == 10
    images, labels = train[list(range(len(train)))]
    assert images.shape == (1437, 1, 8, 8)
    # The stored constants are this split's statistics, rounded to 4 digits.
    assert abs(images.mean().item()) < 1e-3 and abs(images.std().item() - 1) < 1e-3
    test_labels = test[list(range(len(test)))][1]
    assert torch.bincount(test_labels).tolist() == [36, 36, 35, 37, 36, 37, 36, 36, 35, 36]
    assert torch.bincount(labels).sum() + torch.bincount(test_labels).sum() == 1797
    raw = images * 0.3761 + 0.3054
    assert torch.allclose(raw * 16, torch.round(raw * 16), atol=1e-3)  # pixels were 0..16 / 16


def test_unknown_names():
    with pytest.raises(DeployError, match="unknown dataset 'svhn'; choose from digits, mnist"):
        load_dataset("svhn", "train")
    with pytest.raises(DeployError, match="unknown split 'val'"):
        load_dataset("digits", "val")
    assert DATASETS == ("digits", "mnist", "fashion-mnist", "cifar10", "cifar100", "imagenet")


# --- ImageNet-style folders -------------------------------------------------------------------


def coordinate_image(size: int) -> np.ndarray:
    """RGB image whose red value is the row, green the column and blue 7 (size ≤ 256)."""
    rows, cols = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    return np.stack([rows, cols, np.full_like(rows, 7)], axis=-1).astype(np.uint8)


def write_image_tree(root: Path) -> None:
    for split in ("train", "val"):
        (root / split / "cat").mkdir(parents=True)
        (root / split / "dog").mkdir(parents=True)
    Image.fromarray(coordinate_image(256)).save(root / "val" / "cat" / "a.png")
    Image.fromarray(np.full((50, 100, 3), (200, 100, 50), np.uint8)).save(
        root / "val" / "dog" / "b.png"
    )
    Image.fromarray(coordinate_image(256)).save(root / "train" / "dog" / "c.png")
    (root / "train" / "cat" / "notes.txt").write_text("not an image")


def test_image_folder_centre_crop_resize_and_labels(tmp_path):
    write_image_tree(tmp_path)
    info = dataset_info("imagenet", tmp_path)
    assert info.num_classes == 2 and info.in_shape == (3, 224, 224)
    ds = load_dataset("imagenet", "test", data_dir=tmp_path)
    assert len(ds) == 2
    cat, cat_label = ds[0]
    assert cat_label == 0 and cat.shape == (3, 224, 224)
    centre = coordinate_image(256)[16:240, 16:240].transpose(2, 0, 1)
    torch.testing.assert_close(cat, expected(centre, info.mean, info.std))
    dog, dog_label = ds[1]  # 50×100 → 256×512 → centre 224×224; a flat colour stays flat
    assert dog_label == 1 and dog.shape == (3, 224, 224)
    flat = np.broadcast_to(np.array([200, 100, 50], np.uint8)[:, None, None], (3, 224, 224))
    torch.testing.assert_close(dog, expected(flat, info.mean, info.std), atol=1e-4, rtol=0)


def test_image_folder_augmentation_random_crop_and_flip(tmp_path):
    write_image_tree(tmp_path)
    info = dataset_info("imagenet", tmp_path)
    ds = load_dataset("imagenet", "train", data_dir=tmp_path, augment=True, seed=3)
    assert len(ds) == 1
    flips, tops = [], set()
    for _ in range(8):
        image, label = ds[0]
        assert label == 1 and image.shape == (3, 224, 224)
        raw = unnormalise(image, info.mean, info.std)
        top, left = raw[0, 0, 0], min(raw[1, 0, 0], raw[1, 0, -1])
        assert (raw[0] == (top + np.arange(224))[:, None]).all()
        flipped = raw[1, 0, 0] > raw[1, 0, -1]
        columns = left + np.arange(224)
        assert (raw[1] == (columns[::-1] if flipped else columns)[None, :]).all()
        assert 0 <= top <= 32 and 0 <= left <= 32
        flips.append(flipped)
        tops.add(int(top))
    assert any(flips) and not all(flips) and len(tops) > 1


def test_image_folder_errors(tmp_path):
    with pytest.raises(DeployError, match=f"imagenet: no folder {tmp_path / 'train'}"):
        dataset_info("imagenet", tmp_path)
    write_image_tree(tmp_path)
    (tmp_path / "val" / "dog" / "b.png").write_bytes(b"\x89PNG broken")
    ds = load_dataset("imagenet", "test", data_dir=tmp_path)
    with pytest.raises(DeployError, match="b.png: cannot decode image"):
        ds[1]
    (tmp_path / "val" / "bird").mkdir()
    with pytest.raises(DeployError, match="classes not in train/: bird"):
        load_dataset("imagenet", "test", data_dir=tmp_path)


# --- loaders ----------------------------------------------------------------------------------


def first_pixels(loader) -> list[int]:
    """Image identity of every sample in loader order (numbered_images: pixel (0,0) = 20·i)."""
    out = []
    for images, _ in loader:
        raw = torch.round((images[:, 0, 0, 0] * 0.3081 + 0.1307) * 255)
        out += (raw / 20).to(torch.int64).tolist()
    return out


def test_loader_limit_shuffle_and_seed(tmp_path):
    write_idx_split(tmp_path, "train", numbered_images(12), np.arange(12, dtype=np.uint8) % 10)
    plain = make_loader("mnist", "train", 5, data_dir=tmp_path, augment=False, shuffle=False)
    assert first_pixels(plain) == list(range(12))
    assert [len(labels) for _, labels in plain] == [5, 5, 2]
    shuffled = make_loader("mnist", "train", 4, data_dir=tmp_path, augment=False, limit=7, seed=1)
    order = first_pixels(shuffled)
    assert sorted(order) == list(range(7)) and order != list(range(7))
    again = make_loader("mnist", "train", 4, data_dir=tmp_path, augment=False, limit=7, seed=1)
    assert first_pixels(again) == order
    other = make_loader("mnist", "train", 4, data_dir=tmp_path, augment=False, limit=7, seed=2)
    assert first_pixels(other) != order


def test_loader_defaults_follow_split(tmp_path):
    write_idx_split(tmp_path, "test", numbered_images(6), np.zeros(6, dtype=np.uint8))
    test_loader = make_loader("mnist", "test", 6, data_dir=tmp_path)
    assert first_pixels(test_loader) == list(range(6))  # no shuffle, no augmentation
    assert test_loader.dataset.augmentation is None
    with pytest.raises(DeployError, match="batch size must be at least 1"):
        make_loader("mnist", "test", 0, data_dir=tmp_path)
    with pytest.raises(DeployError, match="limit must be at least 1"):
        make_loader("mnist", "test", 2, data_dir=tmp_path, limit=0)


def test_image_folder_loader_batches(tmp_path):
    write_image_tree(tmp_path)
    images, labels = next(iter(make_loader("imagenet", "test", 2, data_dir=tmp_path)))
    assert images.shape == (2, 3, 224, 224) and labels.tolist() == [0, 1]


@pytest.mark.skipif(not FASHION_MNIST_DIR.is_dir(), reason="dataset-fashion-mnist not installed")
def test_real_fashion_mnist():
    train, test = load_dataset("fashion-mnist", "train"), load_dataset("fashion-mnist", "test")
    assert (len(train), len(test)) == (60000, 10000)
    images, labels = test[list(range(len(test)))]
    assert images.shape == (10000, 1, 28, 28)
    assert torch.bincount(labels).tolist() == [1000] * 10
    assert abs(images.mean().item()) < 0.01 and abs(images.std().item() - 1) < 0.01
