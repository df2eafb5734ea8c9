"""The VGGFace Score's network and weights (recipe §4.1): the real loading path with a self-made pickle of the real
key names and shapes, a pickle that carries code, and the preprocessing switch."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from sf2f.evaluate.vggface_score import (
    VGGFACE_CLASSES,
    VGGFACE_MEAN_RGB,
    UnsafePickleError,
    VGGFaceClassifier,
    load_numpy_pickle,
    load_vggface_resnet50,
    vggface_input,
    vggface_resnet50,
)
from sf2f.faces import normalize_images
from sf2f.weights import REGISTRY, WeightsError


@pytest.fixture(scope="module")
def weight_pickle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    """resnet50_ft_weight.pkl's structure: the state dict's names (no num_batches_tracked) -> float32 numpy arrays,
    pickled with protocol 2 as Python 2 could read it (and so read back with latin-1)."""
    torch.manual_seed(0)
    net = vggface_resnet50().eval()
    with torch.no_grad():  # non-trivial running statistics, so loading them is checked too
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    arrays = {k: v.numpy().copy() for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path_factory.mktemp("vggface") / "resnet50_ft_weight.pkl"
    with path.open("wb") as handle:
        pickle.dump(arrays, handle, protocol=2)
    return path, net


@pytest.fixture(scope="module")
def loaded(weight_pickle) -> torch.nn.Module:
    return load_vggface_resnet50(weight_pickle[0])


def test_architecture_is_the_caffe_resnet50() -> None:
    with torch.device("meta"):
        net = vggface_resnet50(num_classes=10)
    first = net.layer2[0]
    # the stride sits on the first 1x1 conv (Caffe), not on the 3x3 (torchvision)
    assert first.conv1.stride == (2, 2) and first.conv2.stride == (1, 1) and first.downsample[0].stride == (2, 2)
    assert net.maxpool.ceil_mode and net.maxpool.padding == 0
    assert [len(getattr(net, f"layer{i}")) for i in range(1, 5)] == [3, 4, 6, 3]
    assert net.fc.in_features == 2048
    # ceil-mode pooling keeps 56x56 after the stem, so a 224 input leaves the 7x7 map AvgPool(7) turns into 1x1
    assert net(torch.zeros(1, 3, 224, 224, device="meta")).shape == (1, 10)
    assert net.maxpool(torch.zeros(1, 64, 112, 112, device="meta")).shape[-1] == 56
    assert net.maxpool(torch.zeros(1, 64, 110, 110, device="meta")).shape[-1] == 55  # floor mode would give 54


def test_a_pickle_with_the_real_keys_and_shapes_loads(weight_pickle, loaded) -> None:
    _, reference = weight_pickle
    net = loaded
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    assert net.fc.out_features == VGGFACE_CLASSES
    for key, value in reference.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(net.state_dict()[key], value), key
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(net(x), reference(x), atol=1e-4)


def test_the_classifier_gives_distributions_over_8631_identities(loaded) -> None:
    pixels = torch.randint(0, 256, (3, 64, 64, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    classifier = VGGFaceClassifier(loaded, channel_order="bgr", batch_size=2)
    probs = classifier.probabilities(normalize_images(pixels))
    assert probs.shape == (3, VGGFACE_CLASSES) and np.allclose(probs.sum(axis=1), 1.0)


def test_a_pickle_that_carries_code_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "resnet50_ft_weight.pkl"
    path.write_bytes(pickle.dumps({"conv1.weight": Payload()}, protocol=2))
    with pytest.raises(UnsafePickleError, match="system"):
        load_vggface_resnet50(path)
    assert not marker.exists()

    class Builtin:
        def __reduce__(self):
            return (eval, ("1",))

    # builtins are refused too, and so is a non-latin-1 use of the bytes codec
    path.write_bytes(pickle.dumps({"x": Builtin()}, protocol=2))
    with pytest.raises(UnsafePickleError, match="eval"):
        load_numpy_pickle(path)
    codec = b"\x80\x02}q\x00X\x01\x00\x00\x00xc_codecs\nencode\nX\x01\x00\x00\x00aX\x06\x00\x00\x00base64\x86Rs."
    path.write_bytes(codec)
    with pytest.raises(UnsafePickleError, match="latin1"):
        load_numpy_pickle(path)


def test_wrong_contents_are_named(tmp_path: Path, weight_pickle) -> None:
    arrays = {k: v.numpy() for k, v in weight_pickle[1].state_dict().items() if not k.endswith("num_batches_tracked")}
    cases = {
        "unexpected key": {**arrays, "head.weight": np.zeros(3, np.float32)},
        "missing 1 key": {k: v for k, v in arrays.items() if k != "layer3.2.bn2.running_var"},
        "has shape": {**arrays, "fc.bias": np.zeros(10, np.float32)},
    }
    for message, content in cases.items():
        path = tmp_path / f"{message.replace(' ', '_')}.pkl"
        path.write_bytes(pickle.dumps(content, protocol=4))
        with pytest.raises(WeightsError, match=message):
            load_vggface_resnet50(path)
    path = tmp_path / "strings.pkl"
    path.write_bytes(pickle.dumps({"fc.bias": "not an array"}, protocol=2))
    with pytest.raises(UnsafePickleError, match="numeric numpy array"):
        load_numpy_pickle(path)


def test_missing_weights_give_the_link(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsError) as err:
        load_vggface_resnet50()
    text = str(err.value)
    assert "1A94PAAnwk6L7hXdBXLFosB_s0SzEhAFU" in text and "resnet50_ft_weight.pkl" in text
    assert REGISTRY["vggface2_resnet50_ft"].sha256 is None  # checked by keys and shapes instead


def test_input_subtracts_the_caffe_means_in_the_chosen_channel_order() -> None:
    pixels = torch.zeros(1, 3, 2, 2)
    pixels[:, 0], pixels[:, 1], pixels[:, 2] = 200.0, 100.0, 50.0
    rgb = vggface_input(pixels, "rgb", size=224)
    bgr = vggface_input(pixels, "bgr", size=224)
    expected_rgb = [200 - VGGFACE_MEAN_RGB[0], 100 - VGGFACE_MEAN_RGB[1], 50 - VGGFACE_MEAN_RGB[2]]
    assert rgb.shape == (1, 3, 224, 224)
    assert torch.allclose(rgb[0, :, 100, 100], torch.tensor(expected_rgb))
    assert torch.allclose(bgr[0, :, 100, 100], torch.tensor(expected_rgb[::-1]))
    # align_corners=True keeps the corner pixels exactly
    ramp = torch.arange(4.0).view(1, 1, 2, 2).expand(1, 3, 2, 2)
    up = vggface_input(ramp + torch.tensor(VGGFACE_MEAN_RGB).view(1, 3, 1, 1), "rgb", size=5)
    assert up[0, 0, 0, 0] == 0 and up[0, 0, -1, -1] == 3 and up[0, 0, 0, 2] == pytest.approx(0.5)
