"""Shape helpers shared by the image models."""

from __future__ import annotations


def image_shape(model: str, input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """``(C, H, W)`` from ``input_shape``, which may also be ``(H, W)`` (one channel)."""
    if len(input_shape) == 2:
        return (1, input_shape[0], input_shape[1])
    if len(input_shape) == 3:
        return (input_shape[0], input_shape[1], input_shape[2])
    raise ValueError(f"model {model!r} needs image inputs (C, H, W), got input_shape={input_shape}")


def conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Output length of a convolution or pooling along one axis."""
    return (size + 2 * padding - kernel) // stride + 1


def check_fits(model: str, input_shape: tuple[int, ...], h: int, w: int) -> None:
    """Reject an input so small that a layer would produce an empty feature map."""
    if h < 1 or w < 1:
        raise ValueError(
            f"model {model!r}: input_shape={input_shape} is too small for its convolutions and pooling"
        )


def check_widths(model: str, widths: object, count: int) -> tuple[int, ...]:
    """``widths`` as a tuple of ``count`` positive ints (one per hidden layer), or a clear ``ValueError``."""
    values = tuple(widths) if isinstance(widths, list | tuple) else ()
    if len(values) != count or not all(
        isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in values
    ):
        raise ValueError(f"model {model!r}: widths must be {count} positive layer widths, got {widths!r}")
    return values
