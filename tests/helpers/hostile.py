"""Hostile inputs the tests feed lbapp."""


def alias_bomb() -> bytes:
    """Under 500 bytes that stand for 9^10 (3.5 billion) strings once aliases are expanded."""
    lines = [b'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [".encode() + b",".join([f"*a{i - 1}".encode()] * 9) + b"]")
    lines.append(b"vips: [" + b",".join([b"*a8"] * 9) + b"]")
    return b"\n".join(lines) + b"\n"
