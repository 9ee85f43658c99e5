"""Near-duplicate detection over thousands of images.

Two images are near-duplicates when their perceptual hashes are within
``PHASH_MAX_DISTANCE`` bits AND the SSIM of their grey thumbnails is at least
``SSIM_MIN``: the hash is cheap and tolerant (re-encoding, slight rescale or
brightness), SSIM confirms that the structure really matches. Pairs are never
enumerated: multi-index hashing (``candidate_pairs``) only compares images
that agree exactly on one chunk of their hash, and SSIM runs only on those
candidates. Near-duplicates link into groups by connected components, so a run
of consecutive video frames that each differ by a pixel of pan collapses into
one group; ``choose_representatives`` keeps the best image of each group.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import cv2
import numpy as np

from .imageops import NEUTRAL_GREY

PHASH_MAX_DISTANCE, SSIM_MIN = 8, 0.95

HASH_BITS = 64
PHASH_SIZE = 32  # px: the grey square the DCT is taken of
PHASH_BLOCK = 8  # the top-left 8x8 DCT coefficients: the lowest frequencies give the 64 bits
THUMBNAIL_SIZE = 64  # px: the square SSIM is measured on
# Gaussian blur of the thumbnail, px at THUMBNAIL_SIZE (scaled with the size). At 64 px a 2 px pan of a
# 640 px frame is a 0.2 px shift, which plain SSIM already reads as new structure on busy sets (6 of 80
# panning demo shots split); 0.5 px tames that (1 of 80) while distinct frames of one character in the
# same framing still stay apart (3 pairs of 400 linked; 1.5 px linked 38 pairs of 300).
THUMBNAIL_BLUR_SIGMA = 0.5
# Standard SSIM (Wang et al. 2004): Gaussian window 11x11, sigma 1.5, K1 = 0.01, K2 = 0.03, 8-bit range.
SSIM_WINDOW, SSIM_SIGMA = 11, 1.5
SSIM_C1, SSIM_C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
PAIR_BLOCK = 1 << 20  # hash pairs compared per numpy step: bounds memory when a bucket is huge


def _grey(image: np.ndarray) -> np.ndarray:
    """float32 grey image; a BGRA image is composited on the cut-outs' neutral grey by its alpha, so a
    cut-out compares as what an alpha-less trainer sees, whatever colour hides under alpha 0.

    Grey conversion comes first (on uint8, fast): it is a weighted mean with weights summing to 1,
    so compositing the grey equals the grey of the composite.
    """
    if image.ndim == 2:
        return image.astype(np.float32)
    grey = cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_BGR2GRAY).astype(np.float32)
    if image.shape[2] == 4:
        alpha = image[..., 3].astype(np.float32) / 255.0
        grey = grey * alpha + NEUTRAL_GREY * (1.0 - alpha)
    return grey


def phash(image: np.ndarray) -> int:
    """64-bit DCT perceptual hash: bit set where a low-frequency coefficient exceeds the median.

    Grey 32x32 (area-averaged), DCT, top-left 8x8 block in row-major order,
    first coefficient = most significant bit; the median leaves out the DC term
    (the mean brightness), so a uniform brightness change moves none of the other 63 bits.
    """
    small = cv2.resize(_grey(image), (PHASH_SIZE, PHASH_SIZE), interpolation=cv2.INTER_AREA)
    block = cv2.dct(small)[:PHASH_BLOCK, :PHASH_BLOCK].ravel()
    bits = block > np.median(block[1:])
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def ssim_thumbnail(image: np.ndarray, size: int = THUMBNAIL_SIZE) -> np.ndarray:
    """uint8 grey size x size thumbnail for ``ssim``, lightly blurred (THUMBNAIL_BLUR_SIGMA); squashed
    to a square so that a copy rescaled to a slightly different aspect still lines up."""
    small = cv2.resize(_grey(image), (size, size), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), THUMBNAIL_BLUR_SIGMA * size / THUMBNAIL_SIZE)
    return np.clip(np.rint(small), 0, 255).astype(np.uint8)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two same-size grey uint8 images (Gaussian-weighted local statistics over the whole map)."""
    if a.shape != b.shape:
        raise ValueError(f"ssim needs same-size images, got {a.shape} and {b.shape}")
    x, y = a.astype(np.float32), b.astype(np.float32)

    def blur(img: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(img, (SSIM_WINDOW, SSIM_WINDOW), SSIM_SIGMA)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x * mu_x
    var_y = blur(y * y) - mu_y * mu_y
    cov = blur(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + SSIM_C1) * (2 * cov + SSIM_C2)
                / ((mu_x * mu_x + mu_y * mu_y + SSIM_C1) * (var_x + var_y + SSIM_C2)))
    return float(ssim_map.mean())


def _chunks(max_distance: int) -> list[tuple[int, int]]:
    """(shift, width) of max_distance + 1 disjoint bit chunks covering the hash, as even as possible."""
    if not 0 <= max_distance < HASH_BITS:
        raise ValueError(f"max_distance must be in 0..{HASH_BITS - 1}, got {max_distance}")
    count = max_distance + 1
    widths = [HASH_BITS // count + (k < HASH_BITS % count) for k in range(count)]
    shifts = np.cumsum([0, *widths[:-1]])
    return [(int(shift), width) for shift, width in zip(shifts, widths, strict=True)]


def _chunk_values(hashes: np.ndarray, shift: int, width: int) -> np.ndarray:
    return (hashes >> np.uint64(shift)) & np.uint64((1 << width) - 1)


def _buckets(values: np.ndarray) -> Iterator[np.ndarray]:
    """Ascending index arrays of the entries sharing one chunk value (buckets of one are skipped)."""
    order = np.argsort(values, kind="stable")
    starts = np.flatnonzero(np.diff(values[order])) + 1
    for members in np.split(order, starts):
        if len(members) > 1:
            yield members


def _bucket_pairs(members: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """All index pairs (a < b) within one bucket, a block of rows at a time."""
    n = len(members)
    rows_per_block = max(1, PAIR_BLOCK // n)
    columns = np.arange(n)
    for start in range(0, n - 1, rows_per_block):
        rows = np.arange(start, min(start + rows_per_block, n - 1))
        row, column = np.nonzero(columns[None, :] > rows[:, None])
        yield members[rows[row]], members[column]


def _sorted_hashes(hashes: dict[str, int]) -> tuple[list[str], np.ndarray]:
    ids = sorted(hashes)
    return ids, np.array([hashes[i] for i in ids], dtype=np.uint64)


def comparison_count(hashes: dict[str, int], max_distance: int = PHASH_MAX_DISTANCE) -> int:
    """How many hash pairs ``candidate_pairs`` compares (to report against n(n-1)/2)."""
    _, values = _sorted_hashes(hashes)
    return sum(len(members) * (len(members) - 1) // 2
               for shift, width in _chunks(max_distance)
               for members in _buckets(_chunk_values(values, shift, width)))


def candidate_pairs(hashes: dict[str, int], max_distance: int = PHASH_MAX_DISTANCE) -> set[tuple[str, str]]:
    """Id pairs (a < b) whose hashes differ in at most ``max_distance`` bits, by multi-index hashing.

    The hash splits into max_distance + 1 disjoint chunks; two hashes within
    max_distance differ in at most max_distance chunks, so (pigeonhole) they
    agree exactly on at least one, and only entries sharing a chunk value are
    compared. A pair found in several chunks is kept from the first only.
    The answer equals the brute-force one.
    """
    ids, values = _sorted_hashes(hashes)
    chunks = _chunks(max_distance)
    pairs: set[tuple[str, str]] = set()
    for index, (shift, width) in enumerate(chunks):
        for members in _buckets(_chunk_values(values, shift, width)):
            for a, b in _bucket_pairs(members):
                xor = values[a] ^ values[b]
                close = np.bitwise_count(xor) <= max_distance
                for earlier_shift, earlier_width in chunks[:index]:
                    close &= _chunk_values(xor, earlier_shift, earlier_width) != 0
                pairs.update((ids[i], ids[j]) for i, j in zip(a[close], b[close], strict=True))
    return pairs


def near_duplicates(hash_a: int, thumbnail_a: np.ndarray, hash_b: int, thumbnail_b: np.ndarray,
                    max_distance: int = PHASH_MAX_DISTANCE, min_ssim: float = SSIM_MIN) -> bool:
    """The one near-duplicate judgement: pHash distance <= max_distance AND thumbnail SSIM >= min_ssim."""
    return (hash_a ^ hash_b).bit_count() <= max_distance and ssim(thumbnail_a, thumbnail_b) >= min_ssim


def near_duplicate_groups(hashes: dict[str, int], thumbnail_of: Callable[[str], np.ndarray],
                          max_distance: int = PHASH_MAX_DISTANCE, min_ssim: float = SSIM_MIN) -> list[list[str]]:
    """Groups (connected components) of ids linked by hash distance <= max_distance and
    SSIM of their thumbnails >= min_ssim; sorted, each sorted, singletons left out.

    ``thumbnail_of(id)`` (the caller loads lazily and caches) is called only
    for ids in candidate pairs. Pairs go closest hash first and SSIM is skipped
    for a pair already in one group (the link could not change the groups):
    in a run of video frames the close neighbours link first, so most of the
    run's other pairs need no SSIM.
    """
    parent: dict[str, str] = {}

    def root(node: str) -> str:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]  # path halving keeps the trees flat
            node = parent[node]
        return node

    pairs = sorted(candidate_pairs(hashes, max_distance), key=lambda p: ((hashes[p[0]] ^ hashes[p[1]]).bit_count(), p))
    for a, b in pairs:
        root_a, root_b = root(a), root(b)
        if root_a != root_b and near_duplicates(hashes[a], thumbnail_of(a), hashes[b], thumbnail_of(b),
                                                max_distance, min_ssim):
            parent[max(root_a, root_b)] = min(root_a, root_b)
    groups: dict[str, list[str]] = {}
    for node in parent:
        groups.setdefault(root(node), []).append(node)
    return sorted(sorted(members) for members in groups.values() if len(members) > 1)


def choose_representatives(groups: list[list[str]], quality: dict[str, float]) -> dict[str, str]:
    """{dropped id: kept id}: each group keeps its highest-quality member (ties: the smallest id)."""
    dropped: dict[str, str] = {}
    for members in groups:
        kept = min(members, key=lambda member: (-quality[member], member))
        dropped.update({member: kept for member in members if member != kept})
    return dropped
