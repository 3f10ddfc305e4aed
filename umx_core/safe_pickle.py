"""A pickle reader that runs nothing: the opcodes are interpreted here, never by `pickle.Unpickler`.

A weights file is untrusted input, and a pickle is a program: `GLOBAL` + `REDUCE` calls any function,
`BUILD` writes attributes. This reader knows plain data (numbers, strings, tuples, lists,
dicts), names a global only as an immutable `Global(module, name)` marker, and calls only what the
caller allows by name, on arguments it checks itself. `BUILD` is accepted only on what this load
made: a dict (its state is dropped: an `OrderedDict`'s `_metadata`) or a `Buildable` an allowed call
returned (its `build` checks the state), so nothing outside the load can be changed. The work is
bounded: every value made counts against a budget in proportion to the pickle's size, and dict keys
must be scalars, so no hostile nesting reaches a recursive hash.
"""

import io
import pickletools
import sys
from typing import NamedTuple

SCALARS = (bool, int, float, str, type(None))  # what the opcodes it knows make, besides containers
# the memory a pickle may take, counted as it is built: a small allowance and a multiple of its size
# (torch's state dicts take about 20 times theirs), so a hostile pickle's memory stays near its size
MEMORY_PER_BYTE = 64
MEMORY_ALLOWANCE = 1 << 20
SLOT = 8  # a reference on the stack, in a list, a tuple or a mark
ENTRY = 96  # a dict's, a set's or the memo's entry, with its share of a growing table
GC_HEAD = 16  # what a container costs beyond its `sys.getsizeof`


class Global(NamedTuple):
    """A global the pickle named: data to look at, never an object that was imported."""

    module: str
    name: str


class PickleRefused(Exception):
    """What is wrong with a pickle, for the caller to name its file."""


class Buildable:
    """Base of a value an allowed call makes that the pickle may then complete with `BUILD` (numpy's
    dtypes are pickled so: made by a call, then given their byte order)."""

    def build(self, state):
        """Takes the state `BUILD` gives, or raises `PickleRefused`; `state` is untrusted."""
        raise PickleRefused(f"its pickle sets the state of a {type(self).__name__} (refused)")


# the opcodes `torch.save` writes (protocol 2), no more: what PyTorch's own weights-only reader accepts
_VALUES = {"BININT", "BININT1", "BININT2", "LONG1", "BINFLOAT", "BINUNICODE"}
_PUTS = {"BINPUT", "LONG_BINPUT"}
_GETS = {"BINGET", "LONG_BINGET"}


class _Machine:
    """One load's stack, marks and memo; every container on them was made by this load."""

    def __init__(self, size, allowed, calls, persistent, refusal):
        self.allowed, self.calls, self.persistent, self.refusal = allowed, calls, persistent, refusal
        self.stack, self.marks, self.memo = [], [], {}
        self.budget = MEMORY_ALLOWANCE + MEMORY_PER_BYTE * size
        self.made = set()  # ids of the dicts and `Buildable`s this load made (kept alive by `self.kept`)
        self.kept = []

    def spend(self, nbytes):
        self.budget -= nbytes
        if self.budget < 0:
            raise PickleRefused("its pickle builds far more than its size can hold (refused as a bomb)")

    def push(self, value, made=True):
        """`value` onto the stack; `made`: a new object (its size counted), not one taken from the memo."""
        self.spend(SLOT + (sys.getsizeof(value) + GC_HEAD if made else 0))
        self.stack.append(value)

    def pop_mark(self):
        if not self.marks:
            raise PickleRefused("its pickle is malformed (a missing MARK)")
        start = self.marks.pop()
        items, self.stack[start:] = self.stack[start:], []
        return items

    def frame(self):
        """How many items lie above the innermost MARK (the only ones an opcode may touch)."""
        return len(self.stack) - (self.marks[-1] if self.marks else 0)

    def top(self, kinds):
        if not self.frame() or not isinstance(self.stack[-1], kinds):
            raise PickleRefused("its pickle is malformed (an item added to something that is not a container)")
        return self.stack[-1]

    def new_dict(self):
        self.spend(ENTRY + SLOT)  # its entry in `made` and in `kept`
        d = {}
        self.made.add(id(d))
        self.kept.append(d)
        return d

    def set_items(self, target, items):
        if len(items) % 2:
            raise PickleRefused("its pickle is malformed (a key without a value)")
        for key, value in zip(items[::2], items[1::2]):
            if not isinstance(key, SCALARS):
                raise PickleRefused(f"its pickle uses a {type(key).__name__} as a dict key (only plain keys are read)")
            self.spend(ENTRY)
            target[key] = value

    def reduce(self, func, args):
        if not isinstance(func, Global) or func not in self.calls:
            name = f"{func.module}.{func.name}" if isinstance(func, Global) else type(func).__name__
            raise PickleRefused(self.refusal.format(f"its pickle calls {name}"))
        if not isinstance(args, tuple):
            raise PickleRefused("its pickle is malformed (a call without an argument tuple)")
        value = self.calls[func](*args)
        if isinstance(value, (dict, Buildable)):
            self.made.add(id(value))
            self.kept.append(value)
        return value

    def build(self, state):
        target = self.stack[-1] if self.frame() else None
        if isinstance(target, Buildable) and id(target) in self.made:
            target.build(state)
        elif not (isinstance(target, dict) and id(target) in self.made and isinstance(state, (dict, type(None)))):
            raise PickleRefused("its pickle sets the state of an object it did not make (refused)")

    def glob(self, module, name):
        if not (isinstance(module, str) and isinstance(name, str)):
            raise PickleRefused("its pickle is malformed (a global named by something else than text)")
        if (module, name) not in self.allowed:
            raise PickleRefused(self.refusal.format(f"its pickle asks for {module}.{name}"))
        return Global(module, name)

    def step(self, name, arg):  # noqa: C901 - one branch per opcode reads best as one table
        st = self.stack
        if name == "PROTO":
            if not 0 <= arg <= 5:
                raise PickleRefused(f"its pickle has an unknown protocol {arg}")
        elif name == "MARK":
            self.spend(SLOT)
            self.marks.append(len(st))
        elif name in _VALUES:
            self.push(arg)
        elif name in ("NONE", "NEWTRUE", "NEWFALSE"):
            self.push({"NONE": None, "NEWTRUE": True, "NEWFALSE": False}[name])
        elif name == "EMPTY_TUPLE":
            self.push(())
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            if self.frame() < n:
                raise PickleRefused("its pickle is malformed (a tuple of missing items)")
            items = tuple(st[-n:])
            del st[-n:]
            self.push(items)
        elif name == "TUPLE":
            self.push(tuple(self.pop_mark()))
        elif name == "EMPTY_LIST":
            self.push([])
        elif name == "APPEND":
            value = self._pop()
            self.spend(SLOT)
            self.top(list).append(value)
        elif name == "APPENDS":
            items = self.pop_mark()
            self.spend(SLOT * len(items))
            self.top(list).extend(items)
        elif name == "EMPTY_DICT":
            self.push(self.new_dict())
        elif name == "SETITEM":
            value, key = self._pop(), self._pop()
            self.set_items(self.top(dict), [key, value])
        elif name == "SETITEMS":
            items = self.pop_mark()
            self.set_items(self.top(dict), items)
        elif name == "GLOBAL":
            module, _, attr = arg.partition(" ")
            self.push(self.glob(module, attr))
        elif name == "REDUCE":
            args, func = self._pop(), self._pop()
            self.push(self.reduce(func, args))
        elif name == "BINPERSID":
            self.push(self.persistent(self._pop()))
        elif name in _PUTS:
            if not self.frame():
                raise PickleRefused("its pickle is malformed (a memo of an empty stack)")
            self.spend(ENTRY)
            self.memo[arg] = st[-1]
        elif name in _GETS:
            if arg not in self.memo:
                raise PickleRefused("its pickle is malformed (a memo entry it never made)")
            self.push(self.memo[arg], made=False)
        elif name == "BUILD":
            self.build(self._pop())
        else:
            raise PickleRefused(f"its pickle uses the {name} opcode (refused: torch.save does not write it)")

    def _pop(self):
        if not self.frame():
            raise PickleRefused("its pickle is malformed (an item taken from an empty stack or across a MARK)")
        return self.stack.pop()


STATE_DICT_REFUSAL = "not a plain state dict: {} (refused: only ordered dicts, tensors and storages are read)"


def load(stream, allowed=(), calls=None, persistent=None, size=None, refusal=STATE_DICT_REFUSAL):
    """One pickle read from `stream` (left just after its STOP), running nothing.

    Args:
        stream: a binary file positioned at the pickle.
        allowed: `(module, name)` pairs the pickle may name; each comes back as a `Global` marker.
        calls: `{Global: function}`: the only globals a REDUCE may call, each checking its arguments.
        persistent: function of a persistent id, or None to refuse persistent ids.
        size: bytes the pickle may span (the budget of values scales with it); default: the rest
            of the stream.
        refusal: the message for a global that is not allowed, `{}` standing for what the pickle asked.
    Returns:
        the unpickled value: scalars, tuples, lists, dicts, `Global`s and what `calls` return.
    Raises:
        PickleRefused: what is wrong; the caller names the file.
    """
    if size is None:
        here = stream.tell()
        size = stream.seek(0, io.SEEK_END) - here
        stream.seek(here)

    def refuse_persistent(pid):
        raise PickleRefused("its pickle refers to data outside itself (a persistent id) where none is expected")

    machine = _Machine(size, set(allowed) | {(g.module, g.name) for g in (calls or {})}, dict(calls or {}),
                       persistent or refuse_persistent, refusal)
    try:
        for opcode, arg, _pos in pickletools.genops(stream):
            if opcode.name == "STOP":
                if len(machine.stack) != 1 or machine.marks:
                    raise PickleRefused("its pickle is malformed (it ends with a stack that is not one value)")
                return machine.stack[0]
            machine.step(opcode.name, arg)
    except ValueError as exc:  # pickletools: an unknown opcode, a bad argument, or the end before STOP
        raise PickleRefused(f"its pickle is malformed ({exc})") from None
    raise PickleRefused("its pickle is cut short")
