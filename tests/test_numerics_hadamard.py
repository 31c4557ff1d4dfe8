"""FWHT reference, the sign seed rule and the sign ROM file/image."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from axelsim.errors import ConfigError
from axelsim.numerics.hadamard import SignRom, fwht_f64, inverse_rotate_f64, rotate_f64, sign_vector


def sylvester(d: int) -> np.ndarray:
    h = np.array([[1.0]])
    while h.shape[0] < d:
        h = np.block([[h, h], [h, -h]])
    return h


@pytest.mark.parametrize("d", [8, 128, 1024])
def test_fwht_is_the_normalised_sylvester_matrix_orthogonal_and_self_inverse(d):
    eye = np.eye(d)
    h = fwht_f64(eye)
    np.testing.assert_allclose(h, sylvester(d) / np.sqrt(d), atol=1e-15)
    np.testing.assert_allclose(h @ h.T, eye, atol=1e-12)
    x = np.random.default_rng(d).standard_normal((3, 2, d))
    np.testing.assert_allclose(fwht_f64(fwht_f64(x)), x, atol=1e-12)


@settings(max_examples=50, deadline=None)
@given(st.sampled_from([8, 16, 64, 256]), st.integers(0, 2**31), st.integers(0, 40))
def test_rotation_preserves_norm_and_inverts(d, seed, layer):
    s = sign_vector(seed, layer, d)
    x = np.random.default_rng(seed).standard_normal((5, d))
    y = rotate_f64(x, s)
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), np.linalg.norm(x, axis=1), rtol=1e-12)
    np.testing.assert_allclose(inverse_rotate_f64(y, s), x, atol=1e-12)


def test_sign_vector_follows_the_documented_seed_rule():
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([7, 3])))
    expected = 1 - 2 * rng.integers(0, 2, size=128)
    s = sign_vector(7, 3, 128)
    assert s.dtype == np.int8 and np.array_equal(s, expected)
    assert not np.array_equal(sign_vector(7, 4, 128), s)


def test_sign_rom_file_round_trip_and_image(tmp_path):
    rom = SignRom.from_seed(5, 3, 16)
    path = tmp_path / "signs.yaml"
    rom.to_file(path)
    back = SignRom.from_file(path)
    assert np.array_equal(back.vectors, rom.vectors) and back.provenance == "seed 5"
    image = rom.image()
    assert len(image) == rom.rom_bytes == 3 * 2
    bits = np.unpackbits(np.frombuffer(image, dtype=np.uint8), bitorder="little").reshape(3, 16)
    assert np.array_equal(1 - 2 * bits.astype(np.int8), rom.vectors)


def test_sign_rom_accepts_lists_of_plus_minus_one(tmp_path):
    path = tmp_path / "signs.yaml"
    path.write_text("format: axelsim-signs\nversion: 1\ndim: 8\nn_layers: 1\nprovenance: test\n"
                    "layers:\n  0: [1, -1, 1, 1, -1, -1, 1, 1]\n")
    assert SignRom.from_file(path).vector(0).tolist() == [1, -1, 1, 1, -1, -1, 1, 1]


@pytest.mark.parametrize("text, key", [
    ("format: other\n", "format"),
    ("format: axelsim-signs\ndim: 12\nn_layers: 1\nlayers: {0: '++++++++++++'}\n", "dim"),
    ("format: axelsim-signs\ndim: 8\nn_layers: 0\nlayers: {}\n", "n_layers"),
    ("format: axelsim-signs\ndim: 8\nn_layers: 2\nlayers: {0: '++++++++'}\n", "layers"),
    ("format: axelsim-signs\ndim: 8\nn_layers: 1\nlayers: {0: '+++-+++x'}\n", "layers.0"),
    ("format: axelsim-signs\ndim: 8\nn_layers: 1\nlayers: {0: [1, 1, 1, 0, 1, 1, 1, 1]}\n", "layers.0"),
    ("[unclosed\n", "line 2, column 1"),
])
def test_bad_sign_files_raise_config_error_naming_the_key(tmp_path, text, key):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        SignRom.from_file(path)
    assert err.value.source == str(path) and err.value.where == key


def test_missing_file_and_missing_layer(tmp_path):
    with pytest.raises(ConfigError):
        SignRom.from_file(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError) as err:
        SignRom.from_seed(0, 2, 8).vector(2)
    assert err.value.where == "layers.2"
