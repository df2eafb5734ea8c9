"""Face embedders and the weight registry: the real FaceNet loading path, exercised with a self-made file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sf2f.models.face_embedders import FaceNetEmbedder, SmallFaceEmbedder
from sf2f.weights import REGISTRY, WeightFile, WeightsError, locate, sha256_of


@pytest.fixture(scope="module")
def facenet_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, WeightFile, torch.nn.Module]:
    """A state dict shaped like 20180402-114759-vggface2.pt (random weights, 8631-class logits), and its entry."""
    from facenet_pytorch import InceptionResnetV1

    torch.manual_seed(0)
    net = InceptionResnetV1(pretrained=None, classify=True, num_classes=8631).eval()
    path = tmp_path_factory.mktemp("torch_home") / "checkpoints" / "20180402-114759-vggface2.pt"
    path.parent.mkdir(parents=True)
    torch.save(net.state_dict(), path)
    real = REGISTRY["facenet_vggface2"]
    entry = WeightFile(real.name, real.filename, real.url, path.stat().st_size, sha256_of(path), real.hub_subdir,
                       real.purpose)
    return path, entry, net


def test_facenet_hidden_states_match_facenet_pytorch(facenet_file, monkeypatch: pytest.MonkeyPatch) -> None:
    path, entry, reference = facenet_file
    monkeypatch.setenv("TORCH_HOME", str(path.parent.parent))  # found in the default place, as facenet-pytorch caches
    embedder = FaceNetEmbedder.from_vggface2(entry=entry)
    assert not any(p.requires_grad for p in embedder.parameters()) and not embedder.training
    x = torch.randn(2, 3, 140, 140)
    h1, h2, h3, emb = embedder.hidden_states(x)
    # §2.7: at 140 px the repeat blocks give 15x15, 7x7 and 3x3 maps
    assert (h1.shape, h2.shape, h3.shape, emb.shape) == (
        (2, 256, 15, 15), (2, 896, 7, 7), (2, 1792, 3, 3), (2, 512)
    )
    reference.classify = False
    with torch.no_grad():
        assert torch.allclose(emb, reference(x), atol=1e-5)
    assert torch.allclose(emb.norm(dim=1), torch.ones(2), atol=1e-5)


def test_missing_weights_say_where_to_get_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsError) as err:
        locate("facenet_vggface2")
    message = str(err.value)
    assert str(tmp_path / "checkpoints" / "20180402-114759-vggface2.pt") in message
    assert REGISTRY["facenet_vggface2"].url in message


def test_a_wrong_file_is_refused_by_size_and_hash(tmp_path: Path, facenet_file) -> None:
    path, entry, _ = facenet_file
    with pytest.raises(WeightsError, match="bytes, but"):
        locate("facenet_vggface2", path)  # the real entry: our random file has another size
    forged = tmp_path / "forged.pt"
    forged.write_bytes(b"\0" * entry.size)
    with pytest.raises(WeightsError, match="SHA-256"):
        locate(entry, forged)
    with pytest.raises(KeyError, match="vgg16"):
        locate("vgg16")


def test_small_embedder_shapes_and_normalised_output() -> None:
    net = SmallFaceEmbedder(input_size=64, width=8).eval()
    states = net.hidden_states(torch.randn(3, 3, 64, 64))
    assert [s.shape[1] for s in states] == [16, 32, 64, 512]
    assert [s.shape[-1] for s in states[:3]] == [16, 8, 4]
    assert torch.allclose(states[-1].norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.equal(net(torch.zeros(1, 3, 64, 64)), net.hidden_states(torch.zeros(1, 3, 64, 64))[-1])


def test_embedder_input_crops_the_vgg_box_and_standardises() -> None:
    from sf2f.faces import normalize_images
    from sf2f.models.face_embedders import embedder_input

    pixels = torch.zeros(64, 64, 3, dtype=torch.uint8)
    pixels[12:59, 15:49] = 255  # exactly the VGG box of a 64 px face (rows 12..58, cols 15..48, §4.3)
    x = embedder_input(normalize_images(pixels).unsqueeze(0).requires_grad_(), 140)
    assert x.shape == (1, 3, 140, 140)
    # only the white box survives the crop: every input pixel is (255 - 127.5) / 128
    assert torch.allclose(x, torch.full_like(x, 127.5 / 128), atol=1e-4)
    x.sum().backward()  # differentiable all the way back to generator space
