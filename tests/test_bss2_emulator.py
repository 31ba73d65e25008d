"""The BrainScaleS-2 MAC-mode emulator against hxtorch's mock formula (hxtorch detail/mac.cpp l.17-84, relu.cpp)."""

import numpy as np
import pytest

from snnc.ir.semantics import mac as em
from snnc.ir.semantics.mac import Tile, converting_relu, mac, split_tiles, tiled_mac

# --- mac on hand-computed cases ---------------------------------------------------------------------------------


def test_small_integer_case():
    x = np.array([[1, 2]])
    w = np.array([[10, -3], [5, 4]])  # x @ w = [20, 5]
    out = mac(x, w, gain=0.25)  # [5.0, 1.25] -> floor -> [5, 1]
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[5, 1]])


def test_floor_of_negative_values():
    x = np.array([[1, 2]])
    w = np.array([[-11, -2], [-5, 1]])  # x @ w = [-21, 0]
    np.testing.assert_array_equal(mac(x, w, gain=0.25), [[-6, 0]])  # -5.25 floors to -6, not -5


def test_gain_is_applied_in_float32_as_torch_does():
    # 30 * -50 = -1500; in float64 -1500 * 0.002 = -3.0 exactly, in float32 it is -3.0000002 and floors to -4
    # (torch multiplies a float32 tensor by the scalar in float32; checked against torch in the last test)
    assert mac(np.array([[30]]), np.array([[-50]]), gain=0.002)[0, 0] == -4


def test_clamps_at_127_and_minus_128():
    x = np.full((1, 128), 31)
    w = np.zeros((128, 3), dtype=int)
    w[:, 0], w[:, 1], w[:, 2] = 63, -63, 1  # 31 * 63 * 128 * 0.002 = 499.968; 31 * 128 * 0.002 = 7.936
    np.testing.assert_array_equal(mac(x, w, gain=0.002), [[127, -128, 7]])


def test_each_128_row_partial_is_clamped_before_the_digital_sum():
    x = np.full((1, 256), 31)
    w = np.zeros((256, 3), dtype=int)
    w[:128, :] = 63  # first partial of every column: 499.968 -> 127
    w[128:, 0] = -63  # second partial -499.968 -> floor -500 -> -128; sum -1 (0 without the per-partial clamp)
    w[128:, 1] = 63  # 127 + 127 = 254 -> the sum is clamped to 127
    w[128:, 2] = -10  # 31 * -10 * 128 * 0.002 = -79.36 -> -80; sum 127 - 80 = 47
    np.testing.assert_array_equal(mac(x, w, gain=0.002), [[-1, 127, 47]])


def test_last_partial_may_be_shorter():
    x = np.full((1, 130), 31)
    w = np.full((130, 1), 63)
    w[128:] = -63  # 128 rows -> 127; 2 rows: 31 * -63 * 2 * 0.002 = -7.812 -> -8
    assert mac(x, w, gain=0.002)[0, 0] == 119


def test_num_sends_scales_the_gain():
    x = np.array([[1, 2]])
    w = np.array([[10], [5]])  # 20
    assert mac(x, w, gain=0.25, num_sends=1)[0, 0] == 5
    assert mac(x, w, gain=0.25, num_sends=3)[0, 0] == 15
    assert mac(x, w, gain=0.002, num_sends=1)[0, 0] == 0  # 0.04
    assert mac(x, w, gain=0.002, num_sends=30)[0, 0] == 1  # 1.2
    assert mac(np.full((1, 128), 31), np.full((128, 1), 10), gain=0.002, num_sends=2)[0, 0] == 127  # 158.72


def test_one_dimensional_input_gives_one_dimensional_output():
    out = mac(np.array([1, 2]), np.array([[10, -3], [5, 4]]), gain=0.25)
    assert out.shape == (2,)
    np.testing.assert_array_equal(out, [5, 1])


def test_inputs_and_weights_are_rounded_half_to_even():
    w = np.ones((3, 1))
    # x rounds to [0, 2, 2] (half to even): sum 4; half away from zero would give [1, 2, 3] = 6
    assert mac(np.array([[0.5, 1.5, 2.5]]), w, gain=1.0)[0, 0] == 4
    # w rounds to [2, 0]: 2; half away from zero would give 3 + 1 = 4
    assert mac(np.array([[1, 1]]), np.array([[2.5], [0.5]]), gain=1.0)[0, 0] == 2
    # 31.4 -> 31 and 62.5 -> 62 are accepted, -0.5 -> -0 too
    assert mac(np.array([[31.4]]), np.array([[62.5]]), gain=0.002)[0, 0] == 3  # 31 * 62 * 0.002 = 3.844
    assert mac(np.array([[-0.5]]), np.array([[5]]), gain=1.0)[0, 0] == 0


@pytest.mark.parametrize(
    ("x", "w", "match"),
    [
        ([[31.5]], [[1]], "input: .*between 0 and 31"),  # rounds to 32
        ([[-1]], [[1]], "between 0 and 31"),
        ([[32]], [[1]], "between 0 and 31"),
        ([[1]], [[63.5]], "between -63 and 63"),  # rounds to 64
        ([[1]], [[-63.5]], "between -63 and 63"),
        ([[1]], [[-64]], "between -63 and 63"),
        ([[np.nan]], [[1]], "finite"),
    ],
)
def test_out_of_range_values_are_refused(x, w, match):
    with pytest.raises(ValueError, match=match) as info:
        mac(np.array(x), np.array(w), gain=0.002)
    assert isinstance(info.value, OverflowError)  # hxtorch raises std::overflow_error here


def test_bad_settings_are_refused():
    x, w = np.ones((1, 2)), np.ones((2, 1))
    for kwargs, match in [
        ({"gain": 0.0}, "gain"),
        ({"gain": 1.5}, "gain"),
        ({"num_sends": 0}, "num_sends"),
        ({"noise_std": -1.0}, "noise_std"),
        ({"noise_std": 1.0}, "rng"),  # noise without a generator
        ({"column_gain": np.ones(2)}, "column_gain"),
    ]:
        with pytest.raises(ValueError, match=match):
            mac(x, w, **{"gain": 0.002, **kwargs})
    with pytest.raises(ValueError, match="rows"):
        mac(np.ones((1, 3)), w)


def test_column_gain_is_applied_per_column():
    x = np.array([[1, 1]])
    w = np.array([[10, 10, 10, 63], [10, 10, 10, 63]])  # [20, 20, 20, 126]
    out = mac(x, w, gain=0.25, column_gain=np.array([1.0, 0.5, 2.0, 1.0]))
    np.testing.assert_array_equal(out, [[5, 2, 10, 31]])  # 5, 2.5 -> 2, 10, 31.5 -> 31
    np.testing.assert_array_equal(mac(x, w, gain=0.25, column_gain=np.ones(4)), mac(x, w, gain=0.25))


# --- noise --------------------------------------------------------------------------------------------------------


def test_noise_is_off_by_default():
    rng = np.random.default_rng(1)
    x, w = rng.integers(0, 32, (20, 200)), rng.integers(-63, 64, (200, 30))
    first = mac(x, w)
    np.testing.assert_array_equal(first, mac(x, w))
    np.testing.assert_array_equal(mac(x, w, gain=em.DEFAULT_GAIN, noise_std=0.0, rng=5), first)


def test_noise_is_reproducible_with_a_seed():
    x, w = np.full((50, 10), 10), np.full((10, 40), 20)  # 2000 * 0.002 = 4 before the noise
    a = mac(x, w, noise_std=2.0, rng=7)
    np.testing.assert_array_equal(a, mac(x, w, noise_std=2.0, rng=7))
    np.testing.assert_array_equal(a, mac(x, w, noise_std=2.0, rng=np.random.default_rng(7)))
    assert not np.array_equal(a, mac(x, w, noise_std=2.0, rng=8))
    assert len(np.unique(a)) > 5


def test_noise_has_the_requested_standard_deviation():
    x, w = np.full((100, 10), 10), np.full((10, 100), 20)  # 4.0 before the noise, far from both clamps
    out = mac(x, w, noise_std=2.0, rng=3).ravel()  # 10,000 draws
    # floor(4 + N(0, s)): std sqrt(s**2 + 1/12) = 2.02, mean 4 - 0.5
    assert abs(out.std() - 2.0) < 0.05 * 2.0
    assert abs(out.mean() - 3.5) < 0.1


def test_noise_is_drawn_per_128_row_partial():
    x, w = np.zeros((100, 256)), np.zeros((256, 100))
    out = mac(x, w, noise_std=2.0, rng=4).ravel()  # two partials, each floor(N(0, 2)): std 2 * sqrt(2)
    expected = np.sqrt(2 * (4 + 1 / 12))
    assert abs(out.std() - expected) < 0.05 * expected
    assert abs(out.mean() + 1.0) < 0.15


# --- tiles --------------------------------------------------------------------------------------------------------


def test_split_tiles_counts_and_order():
    tiles = split_tiles(np.zeros((300, 600), dtype=int))
    assert len(tiles) == 3 * 3  # ceil(300 / 128) * ceil(600 / 256)
    assert [(t.row_start, t.row_stop, t.col_start, t.col_stop) for t in tiles[:4]] == [
        (0, 128, 0, 256),
        (128, 256, 0, 256),
        (256, 300, 0, 256),
        (0, 128, 256, 512),
    ]
    assert tiles[-1].shape == (44, 88)
    assert all(t.weights.shape == t.shape for t in tiles)


def test_layer_larger_than_a_tile_split_or_unsplit_without_clamping():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, (8, 300))
    w = rng.integers(-1, 2, (300, 600))
    exact = x @ w  # gain 1: every partial is an integer, so any row cut gives the same sum when nothing clamps
    assert np.abs(exact).max() < 100
    whole = mac(x, w, gain=1.0)
    np.testing.assert_array_equal(whole, exact)
    for tile_rows, tile_cols in [(128, 256), (100, 256), (128, 77), (37, 200)]:
        tiles = split_tiles(w, tile_rows, tile_cols)
        np.testing.assert_array_equal(tiled_mac(x, tiles, gain=1.0), exact, err_msg=f"{tile_rows}x{tile_cols}")


def test_tiles_on_128_row_chunks_equal_mac_even_with_clamping():
    rng = np.random.default_rng(2)
    x = rng.integers(0, 32, (16, 300))
    w = rng.integers(-63, 64, (300, 600))
    w[:128, :50] = 63  # force clamped partials in some columns
    cg = em.fixed_pattern_gain(600, 0.07, rng=9)
    for gain, num_sends in [(0.002, 1), (0.0005, 3), (0.01, 1)]:
        expected = mac(x, w, gain=gain, num_sends=num_sends, column_gain=cg)
        got = tiled_mac(x, split_tiles(w), gain=gain, num_sends=num_sends, column_gain=cg)
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(
            tiled_mac(x, split_tiles(w, 128, 100), gain=gain, num_sends=num_sends, column_gain=cg), expected
        )  # column cuts are independent
    assert (expected == 127).any() and (expected == -128).any()


def test_per_tile_clamping_makes_the_row_cut_matter():
    x = np.full((1, 256), 31)
    w = np.zeros((256, 1), dtype=int)
    w[:128], w[128:] = 63, -63  # 31 * 63 = 1953 per row
    aligned = split_tiles(w)  # rows 0:128, 128:256: 127 + (-128) = -1
    assert tiled_mac(x, aligned, gain=0.002)[0, 0] == -1 == mac(x, w, gain=0.002)[0, 0]
    cuts = [(0, 96), (96, 224), (224, 256)]
    # 96 * 1953 * .002 = 374.98 -> 127; (32 - 96) * 1953 * .002 = -249.98 -> -128; -32 * 1953 * .002 = -124.99 -> -125
    other = [Tile(r0, r1, 0, 1, w[r0:r1]) for r0, r1 in cuts]
    assert tiled_mac(x, other, gain=0.002)[0, 0] == 127 - 128 - 125


def test_tile_plans_that_do_not_cover_the_matrix_are_refused():
    w = np.ones((200, 300), dtype=int)
    x = np.ones((1, 200))
    tiles = split_tiles(w)
    with pytest.raises(ValueError, match="row"):
        tiled_mac(x, tiles[1:])  # rows 0:128 of columns 0:256 missing
    with pytest.raises(ValueError, match="column"):
        tiled_mac(x, tiles[:2] + [Tile(t.row_start, t.row_stop, 200, 244, t.weights) for t in tiles[2:]])
    with pytest.raises(ValueError, match="does not fit"):
        tiled_mac(np.ones((1, 129)), [Tile(0, 129, 0, 1, np.ones((129, 1)))])
    with pytest.raises(ValueError, match="weights have shape"):
        tiled_mac(np.ones((1, 2)), [Tile(0, 2, 0, 1, np.ones((2, 2)))])
    with pytest.raises(ValueError, match="between -63 and 63"):
        tiled_mac(np.ones((1, 2)), [Tile(0, 2, 0, 1, np.full((2, 1), 64))])


def test_tiled_noise_is_reproducible_and_has_the_requested_std():
    x, w = np.full((100, 10), 10), np.full((10, 100), 20)
    tiles = split_tiles(w, 128, 30)
    a = tiled_mac(x, tiles, noise_std=2.0, rng=11)
    np.testing.assert_array_equal(a, tiled_mac(x, tiles, noise_std=2.0, rng=11))
    assert abs(a.std() - 2.0) < 0.1 and abs(a.mean() - 3.5) < 0.1


# --- activations and helpers ---------------------------------------------------------------------------------


def test_converting_relu_hand_values():
    y = np.array([-5.5, 0.0, 3.9, 4.0, 7.99, 8.0, 127.0, 200.0, 130.5])
    np.testing.assert_array_equal(converting_relu(y, 2), [0, 0, 0, 1, 1, 2, 31, 31, 31])
    np.testing.assert_array_equal(converting_relu(y, 1), [0, 0, 1, 2, 3, 4, 31, 31, 31])
    np.testing.assert_array_equal(converting_relu(y, 0), [0, 0, 3, 4, 7, 8, 31, 31, 31])
    np.testing.assert_array_equal(converting_relu(np.array([40.0, 63.0, 64.0]), 1), [20, 31, 31])
    np.testing.assert_array_equal(converting_relu(np.array([11.0])), [2])  # hxtorch's default shift is 2
    with pytest.raises(ValueError, match="shift"):
        converting_relu(y, -1)


def test_relu_add_argmax_hand_values():
    np.testing.assert_array_equal(em.relu(np.array([-3.0, 2.7, 200.0])), [0, 2, 127])
    np.testing.assert_array_equal(
        em.add(np.array([100.0, -100.5, 3.9]), np.array([100.0, -100.0, 200.0])), [127, -128, 127]
    )  # 3 + 127 = 130 -> 127
    # 300 and 200 both read as 127 on the int8 path: the first index wins
    np.testing.assert_array_equal(em.argmax(np.array([[1.0, 300.0, 200.0], [5.0, 4.0, 5.5]]), axis=1), [1, 0])


def test_fixed_pattern_gain():
    g = em.fixed_pattern_gain(10_000, 0.07, rng=1)
    assert g.shape == (10_000,)
    assert abs(g.mean() - 1.0) < 0.005 and abs(g.std() - 0.07) < 0.05 * 0.07
    np.testing.assert_array_equal(g, em.fixed_pattern_gain(10_000, 0.07, rng=np.random.default_rng(1)))
    np.testing.assert_array_equal(em.fixed_pattern_gain(5, 0.0, rng=None), np.ones(5))
    with pytest.raises(ValueError, match="rng"):
        em.fixed_pattern_gain(5, 0.1, rng=None)
    with pytest.raises(ValueError, match="spread"):
        em.fixed_pattern_gain(5, -0.1, rng=1)


def test_constants():
    assert (em.INPUT_MAX, em.WEIGHT_MAX, em.OUTPUT_MIN, em.OUTPUT_MAX) == (31, 63, -128, 127)
    assert (em.SIGNED_ROWS, em.COLUMNS, em.HALVES) == (128, 256, 2)
    assert (em.DEFAULT_GAIN, em.DEFAULT_NOISE_STD) == (0.002, 2.0)


# --- against hxtorch's mock written out in torch ----------------------------------------------------------------


def _hxtorch_mock_forward(x, weights, num_sends, gain):
    """hxtorch src/hxtorch/perceptron/detail/mac.cpp mac_mock_forward l.27-83, line by line in torch (no noise)."""
    import torch

    quantized_weights, quantized_inputs = weights.round(), x.round()
    split_inputs = quantized_inputs.split(128, quantized_inputs.dim() - 1)
    split_weights = quantized_weights.split(128, 0)
    output_sizes = list(quantized_inputs.shape)
    output_sizes[-1] = quantized_weights.shape[1]
    results = torch.zeros(output_sizes)
    for xi, wi in zip(split_inputs, split_weights, strict=True):
        local = xi.matmul(wi)
        local.mul_(float(num_sends) * gain)
        local.floor_().clamp_(-128.0, 127.0)
        results.add_(local)
    return results.clamp_(-128.0, 127.0)


def test_matches_hxtorch_mock_written_in_torch():
    import torch

    rng = np.random.default_rng(5)
    for rows, cols, gain, num_sends in [
        (1, 3, 0.002, 1),
        (128, 20, 0.002, 1),
        (129, 7, 0.0018, 2),
        (300, 50, 0.002, 1),
        (300, 50, 0.0007, 5),
        (40, 600, 0.3, 1),
    ]:
        x = rng.uniform(-0.49, 31.49, (9, rows)).astype(np.float32)  # rounding exercised
        w = rng.integers(-63, 64, (rows, cols)).astype(np.float32)
        w[: rows // 2] += rng.choice([-0.5, 0.0, 0.5], (rows // 2, cols)).astype(np.float32) * (
            np.abs(w[: rows // 2]) < 63
        )
        expected = _hxtorch_mock_forward(torch.from_numpy(x), torch.from_numpy(w), num_sends, gain).numpy()
        np.testing.assert_array_equal(mac(x, w, gain=gain, num_sends=num_sends), expected, err_msg=f"{rows}x{cols}")
        np.testing.assert_array_equal(tiled_mac(x, split_tiles(w), gain=gain, num_sends=num_sends), expected)
    # the float32 edge case above: -1500 * 0.002
    t = _hxtorch_mock_forward(torch.tensor([[30.0]]), torch.tensor([[-50.0]]), 1, 0.002)
    assert t.item() == -4.0 == mac(np.array([[30]]), np.array([[-50]]), gain=0.002)[0, 0]
