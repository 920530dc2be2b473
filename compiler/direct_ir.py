"""Arithmetic callbacks written as NVVM IR directly, without numba.

Most FFT callbacks are one expression: a scale, a window, a filter (``x * d * 0.5``). For them
numba is nearly the whole cost of a first compile: importing it and building its typing context
take 0.5-0.7 s of the 0.7-1.0 s a fresh process spends, where libNVVM compiles the few
instructions in milliseconds. A function whose body is one expression of ``+ - * /``, unary minus,
``.real``, ``.imag`` and ``.conjugate()`` over its element, its data element and numeric constants
(literals, globals, closure values) is read here from its bytecode, typed by numba's rules and
written as NVVM IR with the instructions numba's lowering emits for it: the same promotions, the
same complex product ``(ac - bd, ad + bc)``, the same negation (``-0.0 - v``), in the same order,
compiled by libNVVM with the same options. That holds for the value forms (``f(x)``, ``f(x, d)``)
and for cuFFT's own form when its body is that expression over ``data_in[offset]`` and
``user_info[offset]``, returned (prolog) or stored to ``data_out[offset]`` (epilog).
``tests/test_direct_ir.py`` checks that both routes give the same PTX, instruction for
instruction; ``tests/test_gpu_direct_ir.py`` that they give the same bits through cuFFT.

Data that broadcasts is read where numba's wrapper reads it: the offset decoded into the data's
position by the same unsigned arithmetic (``terms.Terms.decode``). Anything else (other calls and
attributes, branches, statements, index forms, runtime parameters, complex division, integer
arithmetic, numba-jitted functions) gives ``None`` here and takes numba's route, which also says
what is wrong with a function numba cannot compile.
"""

from __future__ import annotations

import struct
import sys
from types import CodeType, FunctionType
from typing import Any, Callable, NamedTuple

from .dtypes import callback_symbol, single_holds
from .forms import Form
from .thunk import ELEMENT_ALIGN, alignment_annotation, prototype

# numba's NVVM target (numba_cuda's nvvm module writes the same).
_HEADER = ('target triple = "nvptx64-nvidia-cuda"\n'
           'target datalayout = "e-p:64:64:64-i1:8:8-i8:8:8-i16:16:16-i32:32:32-i64:64:64-i128:128:128-'
           'f32:32:32-f64:64:64-v16:16:16-v32:32:32-v64:64:64-v128:128:128-n16:32:64"\n')

_SCALARS = {"float32": "float", "float64": "double", "int64": "i64"}
_PARTS = {"float32": "float32", "float64": "float64", "complex64": "float32", "complex128": "float64", "int64": "int64"}
_FLOATS = ("float32", "float64", "complex64", "complex128")
_OPS = {"+": "add", "-": "sub", "*": "mul", "/": "div"}
_NUMPY_SCALARS = {"float32", "float64", "complex64", "complex128", "int64"}


class _Value(NamedTuple):
    dtype: str  # int64, float32, float64, complex64, complex128
    parts: tuple[str, ...]  # IR operands: one, or (real, imag)


class _Unsupported(Exception):
    """The function is outside what this module writes; numba's route takes it."""


class _Conjugate(NamedTuple):
    """A value's ``conjugate`` method, loaded and about to be called."""

    value: _Value


# 3.12 loads a method with LOAD_ATTR, its argument's low bit set (3.11 has LOAD_METHOD).
_METHOD_FLAG = sys.version_info >= (3, 12)


def _value(item: Any) -> _Value:
    """An operand of arithmetic: a pointer or the offset of cuFFT's form is not one."""
    if not isinstance(item, _Value):
        raise _Unsupported("arithmetic on a pointer or the offset")
    return item


def _returns_none(ins: Any) -> bool:
    """The epilog's ``return None`` (3.11: LOAD_CONST None then RETURN_VALUE; 3.12: RETURN_CONST None)."""
    return (ins.opname in ("LOAD_CONST", "RETURN_CONST") and ins.argval is None) or ins.opname == "RETURN_VALUE"


def direct_ir(fn: Any, kind: str, form: Form, element: str, user: str | None, *, indirect: bool,
              narrow: bool, terms: Any = None, ir_version: tuple[int, ...] = (2, 0, 3, 2)) -> str | None:
    """NVVM IR of ``fn`` as a ``kind`` callback with cuFFT's prototype, or None where numba must
    compile it. Arguments as for ``cuda_backend.compile_ltoir`` (``user``: the data's dtype name);
    ``ir_version``: libNVVM's, for the module's ``!nvvmir.version``.

    >>> from fftfuse_compiler.forms import Form
    >>> ir = direct_ir(lambda x: x * 0.5, "epilog", Form.VALUE, "complex64", None, indirect=False, narrow=True)
    >>> [line.split(" = ")[1] for line in ir.splitlines() if " fmul " in line]
    ['fmul float %v1, 0x3FE0000000000000', 'fmul float %v2, 0x0000000000000000', \
'fmul float %v1, 0x0000000000000000', 'fmul float %v2, 0x3FE0000000000000']
    >>> direct_ir(lambda x: abs(x), "epilog", Form.VALUE, "complex64", None, indirect=False, narrow=True) is None
    True
    """
    if terms is not None and (terms.params or any(terms.index) or (terms.data is not None and form is Form.CUFFT)):
        return None
    if form not in (Form.VALUE, Form.VALUE_DATA, Form.CUFFT) or element not in _FLOATS:
        return None
    if (user or element) not in _FLOATS:
        return None
    if type(fn) is not FunctionType or fn.__kwdefaults__ or fn.__defaults__:
        return None
    code = fn.__code__
    takes = {Form.VALUE: 1, Form.VALUE_DATA: 2, Form.CUFFT: 4 if kind == "prolog" else 5}[form]
    if code.co_argcount != takes or code.co_kwonlyargcount or code.co_flags & 0x0C:  # *args, **kwargs
        return None
    try:
        writer = _Writer(fn, kind, form, element, user or element, indirect=indirect, narrow=narrow,
                         terms=terms if terms is not None and terms.data is not None else None)
        return writer.module(ir_version)
    except _Unsupported:
        return None


class _Writer:
    """Writes one callback's module, instruction by instruction; raises ``_Unsupported`` at the
    first thing outside what this module writes."""

    def __init__(self, fn: FunctionType, kind: str, form: Form, element: str, user: str, *, indirect: bool,
                 narrow: bool, terms: Any = None) -> None:
        self.fn, self.kind, self.form, self.element, self.user = fn, kind, form, element, user
        self.indirect, self.narrow, self.terms = indirect, narrow, terms
        self.lines: list[str] = []
        self.count = 0
        self.user_pointer: str | None = None  # read once from the slot, for cuFFT's form
        self.position: Callable[[], str] | None = None  # writes broadcast data's position

    # -- values --------------------------------------------------------------------------------
    def fresh(self, instruction: str) -> str:
        self.count += 1
        name = f"%v{self.count}"
        self.lines.append(f"  {name} = {instruction}")
        return name

    def constant(self, value: Any) -> _Value:
        """A Python or NumPy number as numba types it (floats narrowed as ``wrappers`` narrows them)."""
        kind = type(value)
        if kind is bool:
            raise _Unsupported("bool")
        if kind.__module__ == "numpy" and kind.__name__ in _NUMPY_SCALARS:
            dtype = kind.__name__
            value = complex(value) if dtype.startswith("complex") else int(value) if dtype == "int64" else float(value)
        elif kind is int:
            dtype = "int64"
        elif kind is float:
            dtype = "float32" if self.narrow and single_holds(value) else "float64"
        elif kind is complex:
            single = self.narrow and single_holds(value.real) and single_holds(value.imag)
            dtype = "complex64" if single else "complex128"
        else:
            raise _Unsupported(kind.__name__)
        if dtype == "int64":
            if not -(2**63) <= value < 2**63:
                raise _Unsupported("integer beyond int64")
            return _Value("int64", (str(value),))
        parts = (value.real, value.imag) if dtype.startswith("complex") else (value,)
        return _Value(dtype, tuple(_float_literal(p, _PARTS[dtype]) for p in parts))

    def convert(self, value: _Value, dtype: str) -> _Value:
        """numba's cast of ``value`` to ``dtype`` (a widening, or the element's rounding)."""
        if value.dtype == dtype:
            return value
        src, dst = _PARTS[value.dtype], _PARTS[dtype]
        parts = [self.scalar(p, src, dst) for p in value.parts]
        if dtype.startswith("complex"):
            if len(parts) == 1:
                parts.append(_float_literal(0.0, dst))
        elif len(parts) == 2:
            raise _Unsupported("a complex value where a real one is wanted")
        return _Value(dtype, tuple(parts))

    def scalar(self, operand: str, src: str, dst: str) -> str:
        if src == dst:
            return operand
        if src == "int64":
            return self.fresh(f"sitofp i64 {operand} to {_SCALARS[dst]}")
        way = "fpext" if src == "float32" else "fptrunc"
        return self.fresh(f"{way} {_SCALARS[src]} {operand} to {_SCALARS[dst]}")

    def binary(self, op: str, a: _Value, b: _Value) -> _Value:
        if a.dtype == "int64" and b.dtype == "int64":
            raise _Unsupported("integer arithmetic")
        dtype = _promote(a.dtype, b.dtype)
        if op == "div" and dtype.startswith("complex"):
            raise _Unsupported("complex division")  # numba divides by CPython's algorithm
        a, b = self.convert(a, dtype), self.convert(b, dtype)
        t = _SCALARS[_PARTS[dtype]]
        if op == "mul" and len(a.parts) == 2:
            (x, y), (u, v) = a.parts, b.parts
            ac, bd = self.fresh(f"fmul {t} {x}, {u}"), self.fresh(f"fmul {t} {y}, {v}")
            ad, bc = self.fresh(f"fmul {t} {x}, {v}"), self.fresh(f"fmul {t} {y}, {u}")
            return _Value(dtype, (self.fresh(f"fsub {t} {ac}, {bd}"), self.fresh(f"fadd {t} {ad}, {bc}")))
        return _Value(dtype, tuple(self.fresh(f"f{op} {t} {p}, {q}") for p, q in zip(a.parts, b.parts)))

    def part(self, a: _Value, name: str) -> _Value:
        """``.real`` or ``.imag``, as numba lowers them (a real's imaginary part is its type's zero)."""
        if a.dtype == "int64" or name not in ("real", "imag"):
            raise _Unsupported(f"the attribute {name}")
        part = _PARTS[a.dtype]
        if len(a.parts) == 2:
            return _Value(part, (a.parts[0 if name == "real" else 1],))
        return a if name == "real" else _Value(part, (_float_literal(0.0, part),))

    def conjugate(self, a: _Value) -> _Value:
        """``.conjugate()``: the imaginary part negated as numba negates (``-0.0 - v``); a real's is itself."""
        if a.dtype == "int64":
            raise _Unsupported("integer arithmetic")
        if len(a.parts) == 1:
            return a
        t = _SCALARS[_PARTS[a.dtype]]
        return _Value(a.dtype, (a.parts[0], self.fresh(f"fsub {t} -0.0, {a.parts[1]}")))

    def negate(self, a: _Value) -> _Value:
        if a.dtype == "int64":
            raise _Unsupported("integer arithmetic")
        t = _SCALARS[_PARTS[a.dtype]]
        return _Value(a.dtype, tuple(self.fresh(f"fsub {t} -0.0, {p}") for p in a.parts))

    # -- the function's expression ---------------------------------------------------------------
    def expression(self, arguments: list[Any]) -> _Value:
        """Run the function's bytecode on IR values; only a straight-line expression is read.

        ``arguments`` holds a value per parameter, or (cuFFT's form) the name of a pointer or the
        offset: those are only subscripted (``user_info[offset]``) or stored to
        (``data_out[offset] = ...``, an epilog's one statement, whose value is returned here).
        """
        import dis

        stack: list[Any] = []
        stored: _Value | None = None
        for ins in dis.get_instructions(self.fn.__code__):
            name = ins.opname
            if name in ("RESUME", "NOP", "CACHE", "COPY_FREE_VARS", "PRECALL"):
                continue
            if stored is not None and not _returns_none(ins):
                raise _Unsupported("more than one statement")
            if name == "LOAD_FAST" and ins.arg < len(arguments):  # a parameter (locals are refused)
                stack.append(arguments[ins.arg])
            elif name == "LOAD_CONST":
                stack.append(ins.argval if stored is not None else self.constant(ins.argval))
            elif name == "LOAD_GLOBAL":
                if ins.arg & 1:  # also pushes NULL for a call
                    raise _Unsupported("a call")
                stack.append(self.constant(self.global_value(ins.argval)))
            elif name == "LOAD_DEREF":
                stack.append(self.constant(self.closure_value(ins.argval)))
            elif name == "BINARY_OP" and ins.argrepr in _OPS:
                b, a = _value(stack.pop()), _value(stack.pop())
                stack.append(self.binary(_OPS[ins.argrepr], a, b))
            elif name == "UNARY_NEGATIVE":
                stack.append(self.negate(_value(stack.pop())))
            elif name == "LOAD_METHOD" or (name == "LOAD_ATTR" and _METHOD_FLAG and ins.arg & 1):
                if ins.argval != "conjugate":
                    raise _Unsupported(f"the method {ins.argval}")
                stack.append(_Conjugate(_value(stack.pop())))
            elif name == "LOAD_ATTR":
                stack.append(self.part(_value(stack.pop()), ins.argval))
            elif name == "CALL" and ins.arg == 0 and stack and isinstance(stack[-1], _Conjugate):
                stack.append(self.conjugate(stack.pop().value))
            elif name == "BINARY_SUBSCR":
                index, pointer = stack.pop(), stack.pop()
                stack.append(self.element_at(pointer, index))
            elif name == "STORE_SUBSCR" and self.kind == "epilog":
                index, pointer, value = stack.pop(), stack.pop(), _value(stack.pop())
                if (pointer, index, stored) != ("data", "offset", None):
                    raise _Unsupported("a store other than data_out[offset]")
                stored = value
            elif name in ("RETURN_VALUE", "RETURN_CONST"):
                if stored is not None:
                    return stored
                if (self.form, self.kind) == (Form.CUFFT, "epilog"):
                    raise _Unsupported("an epilog in cuFFT's form that stores nothing")
                if name == "RETURN_CONST" and not stack:
                    return self.constant(ins.argval)
                if name == "RETURN_VALUE" and len(stack) == 1:
                    return _value(stack.pop())
                raise _Unsupported(name)
            else:
                raise _Unsupported(name)
        raise _Unsupported("no return")

    def element_at(self, pointer: Any, index: Any) -> _Value:
        """``user_info[offset]`` (or a prolog's ``data_in[offset]``) of cuFFT's form: a load."""
        if index != "offset" or pointer not in ("info", "data") or (pointer, self.kind) == ("data", "epilog"):
            raise _Unsupported("a subscript other than user_info[offset] or data_in[offset]")
        return self.input_element() if pointer == "data" else self.user_element()

    def input_element(self) -> _Value:
        """A prolog's element, ``data_in[offset]``."""
        llvm = _llvm_type(self.element)
        at = self.fresh(f"getelementptr {llvm}, {llvm}* %buffer, i64 %offset")
        return self.load(at, self.element, align=ELEMENT_ALIGN[self.element])

    def global_value(self, name: str) -> Any:
        if name not in self.fn.__globals__:
            raise _Unsupported("a builtin or missing global")
        return self.fn.__globals__[name]

    def closure_value(self, name: str) -> Any:
        code = self.fn.__code__
        if name not in code.co_freevars:
            raise _Unsupported("a cell of the function's own")
        try:
            return self.fn.__closure__[code.co_freevars.index(name)].cell_contents
        except ValueError:  # an empty cell
            raise _Unsupported("an empty closure cell") from None

    # -- the module ------------------------------------------------------------------------------------
    def module(self, ir_version: tuple[int, ...] = (2, 0, 3, 2)) -> str:
        element, part, complex_ = self.element, _SCALARS[_PARTS[self.element]], self.element.startswith("complex")
        llvm = _llvm_type(element)
        ret, params = prototype(self.kind, element)
        symbol = callback_symbol(self.kind, element)
        body = self.lines
        body.append(f"  %buffer = bitcast i8* %data to {llvm}*")
        if self.terms is not None:  # the wrapper decodes the axes' indices before anything else
            self.position = self.broadcast_position()
        if self.kind == "prolog":
            x = None if self.form is Form.CUFFT else self.input_element()
        elif complex_:
            x = _Value(element, (self.fresh(f"extractvalue {params[2]} %element, 0"),
                                 self.fresh(f"extractvalue {params[2]} %element, 1")))
        else:
            x = _Value(element, ("%element",))
        if self.form is Form.CUFFT:
            if self.indirect:  # numba's wrapper reads the slot before it calls the function
                self.user_pointer = self.slot_pointer()
            arguments = ["data", "offset", x, "info", "shared"] if self.kind == "epilog" else \
                ["data", "offset", "info", "shared"]
        else:
            arguments = [x, self.user_element()] if self.form is Form.VALUE_DATA else [x]
        result = self.convert(self.expression(arguments), element)
        value = result.parts[0]
        if complex_:  # cicc's named struct as the prolog's result, numba's literal one in memory
            packed = ret if self.kind == "prolog" else llvm
            first = self.fresh(f"insertvalue {packed} undef, {part} {result.parts[0]}, 0")
            value = self.fresh(f"insertvalue {packed} {first}, {part} {result.parts[1]}, 1")
        if self.kind == "prolog":
            body.append(f"  ret {ret} {value}")
        else:  # the address after the arithmetic, as numba orders it (the same PTX, instruction for instruction)
            body.append(f"  %at = getelementptr {llvm}, {llvm}* %buffer, i64 %offset")
            body.append(f"  store {llvm} {value}, {llvm}* %at, align {ELEMENT_ALIGN[element]}")
            body.append("  ret void")
        names = ["%data", "%offset", "%info", "%shared"] if self.kind == "prolog" else \
            ["%data", "%offset", "%element", "%info", "%shared"]
        signature = ", ".join(f"{t} {n}" for t, n in zip(params, names))
        named = f"{ret if self.kind == 'prolog' else params[2]} = type {llvm}\n" if complex_ else ""
        function = f"define {ret} @\"{symbol}\"({signature}) {{\nentry:\n" + "\n".join(body) + "\n}\n"
        version = ", ".join(f"i32 {v}" for v in ir_version)
        metadata = f"\n!nvvmir.version = !{{!0}}\n!0 = !{{{version}}}\n!1 = !{{}}\n"
        return _HEADER + named + function + metadata + alignment_annotation(self.kind, element, symbol, "")

    def user_element(self) -> _Value:
        """The user data's element at ``offset`` (through the slot with ``indirect``)."""
        user = _llvm_type(self.user)
        position = self.position
        pointer = self.user_pointer or (self.slot_pointer() if self.indirect else
                                         self.fresh(f"bitcast i8* %info to {user}*"))
        index = "%offset" if position is None else position()  # the subscript after the pointer, as Python orders it
        at = self.fresh(f"getelementptr {user}, {user}* {pointer}, i64 {index}")
        return self.load(at, self.user, align=None)

    def broadcast_position(self) -> Callable[[], str]:
        """Broadcast data: writes ``terms``' decoding of the offset into axis indices, and returns
        what writes the data element's position from them, as numba lowers both (``_U`` truncates
        to the terms' width; arithmetic on it is unsigned 64-bit)."""
        import ast

        known: dict[str, tuple[str, int]] = {"offset": ("%offset", 64)}
        divmod_ops, others = (ast.FloorDiv, ast.Mod), {ast.Mult: "mul", ast.Add: "add", ast.Sub: "sub"}

        def widened(item: tuple[str, int]) -> str:
            operand, bits = item
            if bits == 64 or not operand.startswith("%"):
                return operand
            return self.fresh(f"zext i32 {operand} to i64")

        def value(node: ast.expr) -> tuple[str, int]:
            if isinstance(node, ast.Name) and node.id in known:
                return known[node.id]
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "_U" \
                    and len(node.args) == 1 and not node.keywords:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and type(arg.value) is int:
                    return str(arg.value), self.terms.width
                operand, bits = value(arg)
                if self.terms.width == 32 and bits == 64:
                    return self.fresh(f"trunc i64 {operand} to i32"), 32
                return operand, bits
            if isinstance(node, ast.BinOp) and (type(node.op) in divmod_ops or type(node.op) in others):
                a, b = widened(value(node.left)), widened(value(node.right))
                if type(node.op) in divmod_ops:  # numba computes both, as divmod
                    quotient, remainder = self.fresh(f"udiv i64 {a}, {b}"), self.fresh(f"urem i64 {a}, {b}")
                    return (quotient if type(node.op) is ast.FloorDiv else remainder), 64
                return self.fresh(f"{others[type(node.op)]} i64 {a}, {b}"), 64
            raise _Unsupported(f"a term numba lowers otherwise: {ast.dump(node)}")

        for line in self.terms.decode():
            name, _, expression = line.partition(" = ")
            known[name] = value(ast.parse(expression, mode="eval").body)
        return lambda: widened(value(ast.parse(self.terms.data_position(), mode="eval").body))

    def slot_pointer(self) -> str:
        """The data pointer the slot holds (it does not change during a launch)."""
        user = _llvm_type(self.user)
        slot = self.fresh(f"bitcast i8* %info to {user}**")
        return self.fresh(f"load {user}*, {user}** {slot}, !invariant.load !1")

    def load(self, pointer: str, dtype: str, *, align: int | None) -> _Value:
        llvm = _llvm_type(dtype)
        suffix = f", align {align}" if align else ""
        value = self.fresh(f"load {llvm}, {llvm}* {pointer}{suffix}")
        if not dtype.startswith("complex"):
            return _Value(dtype, (value,))
        return _Value(dtype, tuple(self.fresh(f"extractvalue {llvm} {value}, {k}") for k in (0, 1)))


def _llvm_type(dtype: str) -> str:
    part = _SCALARS[_PARTS[dtype]]
    return f"{{{part}, {part}}}" if dtype.startswith("complex") else part


def _promote(a: str, b: str) -> str:
    """numba's (NumPy's) result type of an arithmetic operation on two number types.

    >>> _promote("complex64", "float32"), _promote("complex64", "int64"), _promote("float32", "int64")
    ('complex64', 'complex128', 'float64')
    """
    if a == b:
        return a
    double = any(t in ("int64", "float64", "complex128") for t in (a, b))
    if any(t.startswith("complex") for t in (a, b)):
        return "complex128" if double else "complex64"
    return "float64" if double else "float32"


def _float_literal(value: float, dtype: str) -> str:
    """An LLVM floating constant: the bits of the double that equals the value in ``dtype``.

    >>> _float_literal(0.1, "float32"), _float_literal(0.5, "float64")
    ('0x3FB99999A0000000', '0x3FE0000000000000')
    """
    if value != value:
        raise _Unsupported("a NaN constant")  # its payload need not survive float32
    if dtype == "float32":
        value = struct.unpack("<f", struct.pack("<f", value))[0]
    return "0x" + struct.pack(">d", value).hex().upper()


def compile_direct(module: str, arch: int, *, output: str = "ltoir") -> bytes:
    """LTO-IR (or PTX: ``output="ptx"``) of one module from :func:`direct_ir`, by libNVVM with
    numba's options (without libdevice: the module calls nothing)."""
    from cuda.bindings import nvvm

    program = nvvm.create_program()
    try:
        text = module.encode()
        nvvm.add_module_to_program(program, text, len(text), "fftfuse_callback")
        options = [f"-arch=compute_{arch}", "-opt=3"] + (["-gen-lto"] if output == "ltoir" else [])
        try:
            nvvm.compile_program(program, len(options), options)
        except nvvm.nvvmError as exc:
            size = nvvm.get_program_log_size(program)
            log = bytearray(size)
            nvvm.get_program_log(program, log)
            message = bytes(log).rstrip(bytes(1)).decode()
            raise RuntimeError(f"libNVVM refused a directly written callback ({exc}): {message}") from None
        result = bytearray(nvvm.get_compiled_result_size(program))
        nvvm.get_compiled_result(program, result)
        return bytes(result).rstrip(bytes(1)) if output == "ptx" else bytes(result)
    finally:
        nvvm.destroy_program(program)


def ir_version() -> tuple[int, ...]:
    """libNVVM's IR version, which the module declares (as numba's modules do)."""
    from cuda.bindings import nvvm

    return tuple(int(v) for v in nvvm.ir_version())
