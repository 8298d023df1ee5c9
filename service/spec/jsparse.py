"""Read the JavaScript a ConvNetJS demo user typed, as data, never as code.

The demo's text box holds statements such as::

    layer_defs = [];
    layer_defs.push({type:'conv', sx:5, filters:8});
    net = new convnetjs.Net();
    net.makeLayers(layer_defs);
    trainer = new convnetjs.SGDTrainer(net, {method:'adadelta', batch_size:20});

We split the text into statements and accept only a few shapes: declarations,
assignments of literals (``x = []``, ``opts = {...}``, ``LR = 0.01``), ``X.push(...)``,
``new convnetjs.Net()``, ``net.makeLayers(X)`` and ``new convnetjs.SGDTrainer(net, opts)``.
Anything else is an error with its line number. Then, as ConvNetJS would:

- the network is the array handed to ``net.makeLayers(...)`` (the one whose net the
  trainer trains, else the last one), as it was at that call; pushes to any other
  array (``trainer_defs.push({...})``) are not layers and come back as notes;
- without a ``makeLayers`` call (a paste of only the layers), the layers are
  ``layer_defs``, else the one array holding ``{type: ...}`` objects;
- the trainer options are those of the last ``SGDTrainer`` (an object, or a variable
  holding one).

Object and array literals are JSON5 (unquoted keys, single quotes, hex, trailing
commas, comments); a name inside one may stand for a number or text set earlier
(``learning_rate: LR``).

The work is linear in the text, with a small constant (a 64 KB paste, the schema's
limit, takes tens of milliseconds: bench/jsparse_speed.py): the text is cut into
statements by regular expressions that jump over whole runs of code and strings
(no Python step per character), each literal is rewritten to JSON in one regex pass
and read by the C JSON decoder, and the regexes use possessive quantifiers, so none
of them backtracks. At most MAX_STATEMENTS statements are read and MAX_ERRORS errors
listed, which bounds what a paste of many tiny statements can cost.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from service.spec.netspec import SpecError

MAX_ERRORS = 20  # problems listed for one paste; the rest are counted
MAX_NOTES = 20
MAX_STATEMENTS = 1000  # a demo paste has a few dozen; this bounds the work a 64 KB paste can ask for

_NAME = r"[A-Za-z_$][\w$]*+"
_NAMES = re.compile(rf"(?:(?:var|let|const)\s++)?{_NAME}(?:\s*+,\s*+{_NAME})*+")  # var layer_defs, net, trainer
_ASSIGN = re.compile(rf"(?:(?:var|let|const)\s++)?({_NAME})\s*+=(?![=>])\s*+")
_PUSH = re.compile(rf"({_NAME})\s*+\.\s*+push\s*+\(")
_MAKE = re.compile(rf"({_NAME})\s*+\.\s*+makeLayers\s*+\(\s*+")
_NEW_NET = re.compile(r"new\s++convnetjs\s*+\.\s*+Net(?:\s*+\(\s*+\))?+")
_NEW_TRAINER = re.compile(r"new\s++convnetjs\s*+\.\s*+(?:SGDTrainer|Trainer)\s*+\(\s*+")
_TRAINER_ARGS = re.compile(rf"({_NAME})\s*+(?:,\s*+(.*+))?+", re.S)
_ONLY_NAME = re.compile(_NAME)
_WORDS = frozenset(("true", "false", "null", "Infinity", "NaN"))  # values Python's JSON reads as JS writes them

# ---- cutting the text into statements -------------------------------------------------------
_STR = r"'[^'\\\n\r]*+(?:\\(?:\r\n|[\s\S])[^'\\\n\r]*+)*+'|\"[^\"\\\n\r]*+(?:\\(?:\r\n|[\s\S])[^\"\\\n\r]*+)*+\""
# A run of code and strings closed on their line: everything up to a `;`, a line end, a comment, a
# template string or a quote not closed on its line.
_RUN = re.compile(rf"(?:[^'\"`/;\n]++|{_STR})*+")
_STRINGS = re.compile(_STR)
_SEPARATORS = re.compile(r"[\s;]++")
_TEMPLATE = re.compile(r"`[^`\\]*+(?:\\[\s\S][^`\\]*+)*+`")


def _statements(text: str, errors: list[SpecError]) -> list[tuple[int, str, SpecError | None]]:
    """Cut source at top-level semicolons and line ends, dropping comments (keeping their line ends).

    Each statement is (its first line, its text, a problem that stops it being read: a quote not closed).
    """
    out: list[tuple[int, str, SpecError | None]] = []
    buf: list[str] = []  # the statement so far
    code: list[str] = []  # its runs since the last line end or `;`, whose brackets are counted there
    depth, line, start_line, problem = 0, 1, 1, None
    pos, n = 0, len(text)
    run_at, separators_at = _RUN.match, _SEPARATORS.match
    while pos < n:
        end = run_at(text, pos).end()
        if end != pos:
            run = text[pos:end]
            if buf or not run.isspace():
                if not buf:
                    start_line = line
                buf.append(run)
                code.append(run)
            pos = end
            if pos >= n:
                break
        ch = text[pos]
        if ch == ";" or ch == "\n":
            end = separators_at(text, pos).end()
            if code:
                run = code[0] if len(code) == 1 else "".join(code)
                code = []
                if "'" in run or '"' in run:
                    line += run.count("\n")  # line continuations (backslash, line end) inside strings
                    run = _STRINGS.sub("", run)  # brackets in strings are not brackets
                depth += (run.count("(") + run.count("[") + run.count("{")
                          - run.count(")") - run.count("]") - run.count("}"))
            if depth <= 0 or problem is not None:
                if buf:
                    out.append((start_line, "".join(buf).strip(), problem))
                    if len(out) >= MAX_STATEMENTS:
                        errors.append(_error(start_line, f"the demo source has more than {MAX_STATEMENTS} "
                                                         "statements; a ConvNetJS network takes a few dozen"))
                        return out
                buf, depth, problem = [], 0, None
            elif buf:
                buf.append(text[pos:end])
            line += text.count("\n", pos, end)
            pos = end
        elif ch == "/":
            if text.startswith("//", pos):
                end = text.find("\n", pos)
                pos = n if end < 0 else end
            elif text.startswith("/*", pos):
                end = text.find("*/", pos + 2)
                if end < 0:
                    errors.append(_error(line, "a /* comment is not closed with */"))
                    end = n
                else:
                    end += 2
                newlines = text.count("\n", pos, end)
                if buf:
                    buf.append("\n" * newlines if newlines else " ")
                line += newlines
                pos = end
            else:  # division, or a regular expression: code, refused later
                if not buf:
                    start_line = line
                buf.append("/")
                pos += 1
        elif ch == "`":
            m = _TEMPLATE.match(text, pos)
            end = m.end() if m else n
            if not m:
                errors.append(_error(line, "a template string (`) is not closed"))
            if not buf:
                start_line = line
            buf.append(text[pos:end])
            line += text.count("\n", pos, end)
            pos = end
        else:  # a quote not closed on its line: the statement is not read
            if not buf:
                start_line = line
            if problem is None:
                problem = _error(line, f"a quote ({ch}) is not closed on its line")
            end = text.find("\n", pos)
            end = n if end < 0 else end
            buf.append(text[pos:end])
            pos = end
    if buf:
        out.append((start_line, "".join(buf).strip(), problem))
    return out


# ---- reading one literal: JSON5 rewritten to JSON in one pass, then the C decoder ---------------
# Every alternative starts with a plain character or class (so the scan skips other characters fast) and
# ends with an empty group whose number, m.lastindex, says which it was. A rewrite never joins two tokens:
# a sign becomes a space, so "5+3" stays invalid JSON.
_LITERAL = re.compile("|".join([
    r"'[^'\\\n\r]*+(?:\\(?:\r\n|[\s\S])[^'\\\n\r]*+)*+(?:(')|())",  # 1: closed, 2: not closed on its line
    r'"[^"\\\n\r]*+(?:\\(?:\r\n|[\s\S])[^"\\\n\r]*+)*+(?:(")|())',  # 3, 4
    r"`()",  # 5: a template string
    r"0(?<![\w$.]0)[xX][0-9a-fA-F]++(?![\w$])()",  # 6: hexadecimal
    r"[+\-](?<![\w$.][+\-])0[xX][0-9a-fA-F]++(?![\w$])()",  # 7: signed hexadecimal
    r"[A-Za-z_$](?<![\w$.][A-Za-z_$])[\w$]*+(?=\s*+:)()",  # 8: a key
    r"[A-Za-z_$](?<![\w$.][A-Za-z_$])[\w$]*+()",  # 9: a name as a value
    r"\+(?<![eE]\+)(?=[\d.]|Infinity|NaN)()",  # 10: +1, +Infinity (JSON has no plus sign)
    r"-(?=NaN)()",  # 11: -NaN
    r"\.(?<![\w$.]\.)(?=\d)()",  # 12: .5
    r"\.(?<=\d\.)(?!\d)()",  # 13: 5. and 5.e3
    r",(?=\s*+[\]}])()",  # 14: a trailing comma
    "[\v\f\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]"
    "[\v\f\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*+()",  # 15: JS-only white space
]))
_FIXED = {10: " ", 11: " ", 12: "0.", 13: ".0", 14: "", 15: " "}
_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|x([0-9a-fA-F]{2})|(\r\n|[\n\r\u2028\u2029])|(0(?![0-9]))|(.))", re.S)
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v"}
_JSON_UNSAFE = re.compile(r'[\x00-\x1f"\\]')
_CONTROL = re.compile(r"[\x00-\x1f]")
_NOT_JSON_ESCAPE = re.compile(r'\\(?:[^nrtbf"\\/u]|u(?![0-9a-fA-F]{4}))')
_NOT_JSON_ESCAPE_1 = re.compile(r'\\(?:[^nrtbf"\\/u\']|u(?![0-9a-fA-F]{4}))')  # in '...': \' too
_JSON_REASONS = {
    "Expecting value": "a value is missing or not a number, quoted text, true/false, list or object",
    "Expecting ',' delimiter": "a ',' is missing between two items",
    "Expecting ':' delimiter": "a ':' is missing after a key",
    "Expecting property name enclosed in double quotes": "a key must be a name or quoted text",
    "Extra data": "there is more after the value",
}
_DECODER = json.JSONDecoder()
_JSON_SPACE = re.compile(r"[ \t\n\r]*+")


class _Unreadable(Exception):
    def __init__(self, detail: str, offset: int):
        super().__init__(detail)
        self.detail, self.offset = detail, offset


def _unescape(m: re.Match) -> str:
    hex4, hex2, continuation, octal, other = m.groups()
    if hex4 or hex2:
        return chr(int(hex4 or hex2, 16))
    if continuation:
        return ""
    if octal:
        return "\0"
    if other in "0123456789":
        raise _Unreadable(f"octal escapes such as \\{other} are not allowed in text", m.start())
    if other in "ux":
        raise _Unreadable(f"\\{other} must be followed by {4 if other == 'u' else 2} hexadecimal digits", m.start())
    return _SIMPLE_ESCAPES.get(other, other)


def _to_json(src: str, scope: dict) -> str:
    """JSON text for a JSON5 literal, with the same line ends; names of variables holding a number or text
    are replaced by their value. Raise _Unreadable at the first thing that is not data."""

    def rewrite(m: re.Match) -> str:
        kind = m.lastindex
        if kind == 8:  # the most common: a key
            return '"' + m.group() + '"'
        if kind in _FIXED:
            return _FIXED[kind]
        tok = m.group()
        if kind == 1 or kind == 3:  # a string
            body = tok[1:-1]
            if "\\" in body and not _CONTROL.search(body):  # escapes JSON reads the same way are left to it
                if kind == 3 and not _NOT_JSON_ESCAPE.search(body):
                    return tok
                if kind == 1 and '"' not in body and not _NOT_JSON_ESCAPE_1.search(body):
                    return '"' + body.replace("\\'", "'") + '"'  # each ' in body is escaped: drop that backslash
            if "\\" in body:
                try:
                    value = _ESCAPE.sub(_unescape, body)
                except _Unreadable as exc:
                    raise _Unreadable(exc.detail, m.start() + 1 + exc.offset) from None
                # json has no line continuation: keep its line ends outside the string
                return json.dumps(value) + "\n" * body.count("\n")
            if _JSON_UNSAFE.search(body):
                return json.dumps(body)
            return tok if kind == 3 else '"' + body + '"'
        if kind == 9:
            if tok in _WORDS:
                return tok
            value = scope.get(tok, _MISSING)
            if value is _MISSING:
                raise _Unreadable(f"{tok} is not a value: write text in quotes, as '{tok}'", m.start())
            if value is _UNSET:
                raise _Unreadable(f"{tok} has no value yet", m.start())
            if value is None or isinstance(value, (bool, int, float, str)):
                return json.dumps(value)
            raise _Unreadable(f"{tok} holds {_kind(value)}; inside a literal a name may stand only for "
                              "a number or text", m.start())
        if kind == 6 or kind == 7:
            digits = tok.lstrip("+-")[2:]
            if len(digits) > 64:
                raise _Unreadable("a hexadecimal number has too many digits", m.start())
            return (" -" if tok[0] == "-" else " ") + str(int(digits, 16))
        if kind == 5:
            raise _Unreadable("template strings (`...`) are not read: use quotes", m.start())
        raise _Unreadable(f"a quote ({tok[0]}) is not closed on its line", m.start())

    return _LITERAL.sub(rewrite, src)


def _read(src: str, line: int, what: str, scope: dict, errors: list[SpecError], as_list: bool = False):
    """The value of a literal (a list of the comma-separated values when as_list), and the line of each
    list item; None after adding an error."""
    text = f"[{src}]" if as_list else src
    try:
        conv = _to_json(text, scope)
        value = json.loads(conv)
    except _Unreadable as exc:
        return _unreadable(line + text.count("\n", 0, exc.offset), what, exc.detail, errors)
    except json.JSONDecodeError as exc:
        where = line + conv.count("\n", 0, exc.pos)
        near = conv[exc.pos:min(exc.pos + 20, len(conv) - as_list)].split("\n")[0].strip()  # not our ]
        detail = _JSON_REASONS.get(exc.msg, exc.msg) + (f", at {near}" if near else ", at the end")
        return _unreadable(where, what, detail, errors)
    except RecursionError:
        return _unreadable(line, what, "it is nested too deeply", errors)
    except ValueError:  # an integer past Python's digit limit
        return _unreadable(line, what, "a number has too many digits", errors)
    if not isinstance(value, list):
        return value, None
    return value, _item_lines(conv, len(value), line)


def _item_lines(conv: str, count: int, line: int) -> list[int]:
    """The line each item of the JSON array `conv` starts on."""
    if "\n" not in conv:
        return [line] * count
    lines, last = [], 0
    pos = _JSON_SPACE.match(conv, conv.index("[") + 1).end()
    for _ in range(count):
        line += conv.count("\n", last, pos)
        lines.append(line)
        last = pos
        _, pos = _DECODER.raw_decode(conv, pos)
        pos = _JSON_SPACE.match(conv, pos).end()  # at ',' or ']'
        pos = _JSON_SPACE.match(conv, pos + 1).end()
    return lines


def _unreadable(line: int, what: str, detail: str, errors: list[SpecError]):
    errors.append(_error(line, f"cannot read the {what}: use only numbers, quoted strings, true/false, "
                               f"lists and objects, as in {{type:'conv', sx:5}} ({detail})"))
    return None


def _error(line: int, message: str) -> SpecError:
    return SpecError("convnetjs", f"line {line}: {message}", line)


# ---- what the statements build -------------------------------------------------------------
class _Sentinel:
    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


_MISSING = _Sentinel("MISSING")  # never declared
_UNSET = _Sentinel("UNSET")  # declared (var x;) with no value


class _Array:
    """An array variable: its items, the line of each, and each push (line, items before it)."""

    def __init__(self, name: str, line: int):
        self.name, self.line = name, line
        self.items: list = []
        self.lines: list[int] = []
        self.pushes: list[tuple[int, int]] = []


class _Net:
    def __init__(self, name: str, line: int):
        self.name, self.line = name, line
        self.made: tuple | None = None  # makeLayers: (array, its length then, line, net name)


class _Trainer:
    def __init__(self, net, options: dict, line: int):
        self.net, self.options, self.line = net, options, line


def _times(what: str, lines: list[int]) -> str:
    """'x.push(...) is' once, 'x.push(...) on 3 lines (4 to 9) are' for several."""
    if len(lines) == 1:
        return f"{what} is"
    return f"{what} on {len(lines)} lines ({lines[0]} to {lines[-1]}) are"


def _describe(value) -> str:
    if value is _MISSING:
        return "is not defined"
    if value is _UNSET:
        return "has no value"
    if value is None or isinstance(value, (bool, int, float, str)):
        return f"is {json.dumps(value)}"
    return "is " + _kind(value)


def _kind(value) -> str:
    if isinstance(value, _Array):
        return "an array"
    if isinstance(value, _Net):
        return "a convnetjs.Net"
    if isinstance(value, _Trainer):
        return "a trainer"
    return "an object" if isinstance(value, dict) else "a list"


@dataclass
class Paste:
    """What a demo paste said: its layer definitions and trainer options."""

    layers: list
    trainer: dict | None
    lines: list[int]  # the source line of each layer, to point errors at
    notes: list[SpecError] = field(default_factory=list)  # statements read but not used (trainer_defs.push)


class _Reader:
    def __init__(self):
        self.scope: dict = {}
        self.errors: list[SpecError] = []
        self.arrays: list[_Array] = []
        self.trainers: list[_Trainer] = []
        self.last_made: _Net | None = None

    # -- statements --
    def statement(self, line: int, s: str, problem: SpecError | None) -> None:
        if problem:
            self.errors.append(problem)
        elif _NAMES.fullmatch(s):
            for word in s.split(","):
                name = word.split()[-1]
                self.scope.setdefault(name, _UNSET)
        elif m := _ASSIGN.match(s):
            value = self.value(s[m.end():], line + s.count("\n", 0, m.end()), m[1], s)
            if value is not _MISSING:
                self.scope[m[1]] = value
        elif m := _PUSH.match(s):
            if self.closed(line, s, f"{m[1]}.push("):
                self.push(m[1], s[m.end():-1], line, line + s.count("\n", 0, m.end()))
        elif m := _MAKE.match(s):
            if self.closed(line, s, f"{m[1]}.makeLayers("):
                self.make_layers(m[1], s[m.end():-1].strip(), line, line + s.count("\n", 0, m.end()))
        elif s.startswith("new") and (_NEW_NET.fullmatch(s) or _NEW_TRAINER.match(s)):
            self.value(s, line, None, s)
        else:
            self.not_data(line, s)

    def closed(self, line: int, s: str, call: str) -> bool:
        """Whether the call statement s ends with its ')'; else say so."""
        if s.endswith(")"):
            return True
        self.errors.append(_error(line, f"{call}...) is not closed: a ')' is missing at its end, or the "
                                        "brackets inside it do not match"))
        return False

    def not_data(self, line: int, s: str) -> None:
        shown = s if len(s) <= 60 else s[:57] + "..."
        self.errors.append(_error(line, f"'{shown}' is not a layer_defs.push(...) or SGDTrainer statement; "
                                        "only layer definitions and trainer options are read"))

    def value(self, rhs: str, line: int, name: str | None, s: str):
        """What the right-hand side of `name = rhs` is; _MISSING after an error."""
        if _NEW_NET.fullmatch(rhs):
            return _Net(name or "", line)
        if m := _NEW_TRAINER.match(rhs):
            if not self.closed(line, rhs, "new convnetjs.SGDTrainer("):
                return _MISSING
            return self.trainer(rhs[m.end():-1], line, line + rhs.count("\n", 0, m.end()), s)
        if _ONLY_NAME.fullmatch(rhs) and rhs not in _WORDS:
            value = self.scope.get(rhs, _MISSING)
            if value is _MISSING:
                self.errors.append(_error(line, f"{rhs} is not defined before this line"))
            return value
        if name is None or not rhs or rhs[0] not in "[{'\"0123456789.+-`" and not _ONLY_NAME.fullmatch(rhs):
            self.not_data(line, s)
            return _MISSING
        got = _read(rhs, line, "layer list" if rhs[0] == "[" else f"value of {name}", self.scope, self.errors)
        if got is None:
            return _MISSING
        value, lines = got
        if lines is None:
            return value
        array = self.array(name, line)
        array.items, array.lines = value, lines
        return array

    def array(self, name: str, line: int) -> _Array:
        array = _Array(name, line)
        self.arrays.append(array)
        return array

    def push(self, name: str, args: str, line: int, args_line: int) -> None:
        target = self.scope.get(name, _MISSING)
        if target is _MISSING or target is _UNSET:
            target = self.scope[name] = self.array(name, line)
        elif not isinstance(target, _Array):
            self.errors.append(_error(line, f"{name}.push(...) needs {name} to be an array ({name} = []), "
                                            f"but {name} is {_kind(target)}"))
            return
        what = "layer definition" if name == "layer_defs" else f"value pushed to {name}"
        got = _read(args, args_line, what, self.scope, self.errors, as_list=True)
        if got is not None:
            target.pushes.append((line, len(target.items)))
            target.items.extend(got[0])
            target.lines.extend(got[1])

    def make_layers(self, net_name: str, arg: str, line: int, arg_line: int) -> None:
        net = self.scope.get(net_name, _MISSING)
        if net is _MISSING or net is _UNSET:  # a paste without `net = new convnetjs.Net()`
            net = self.scope[net_name] = _Net(net_name, line)
        elif not isinstance(net, _Net):
            self.errors.append(_error(line, f"{net_name}.makeLayers(...) needs {net_name} = new convnetjs.Net(), "
                                            f"but {net_name} is {_kind(net)}"))
            return
        if _ONLY_NAME.fullmatch(arg):
            array = self.scope.get(arg, _MISSING)
            if not isinstance(array, _Array):
                self.errors.append(_error(line, f"{net_name}.makeLayers({arg}) needs {arg} to be the array of "
                                                f"layer definitions ({arg} = [] and {arg}.push({{...}})), but "
                                                f"{arg} {_describe(array)}"))
                return
        elif arg.startswith("["):
            got = _read(arg, arg_line, "layer list", self.scope, self.errors)
            if got is None:
                return
            array = self.array("", line)
            array.items, array.lines = got
        else:
            self.not_data(line, f"{net_name}.makeLayers({arg})")
            return
        net.made = (array, len(array.items), line, net_name)
        self.last_made = net

    def trainer(self, args: str, line: int, args_line: int, s: str):
        lead = len(args) - len(args.lstrip())
        m = _TRAINER_ARGS.fullmatch(args.strip())
        if not m:
            self.not_data(line, s)
            return _MISSING
        net = self.scope.get(m[1])
        options_text = (m[2] or "").strip()
        if options_text.endswith(",") and not options_text.endswith(",,"):  # f(a, b,)
            options_text = options_text[:-1].rstrip()
        options_line = args_line + (args.count("\n", 0, lead + m.start(2)) if m[2] else 0)
        if not options_text:
            options = {}
        elif _ONLY_NAME.fullmatch(options_text) and options_text not in _WORDS:
            options = self.scope.get(options_text, _MISSING)
            if options is _MISSING or options is _UNSET:
                self.errors.append(_error(line, f"the trainer options {options_text} are not defined "
                                                "before this line"))
                return _MISSING
        else:
            got = _read(options_text, options_line, "trainer options", self.scope, self.errors)
            if got is None:
                return _MISSING
            options = got[0]
            if got[1] is not None:
                options = None  # a list
        if not isinstance(options, dict):
            self.errors.append(_error(line, "the trainer options must be an object"))
            return _MISSING
        trainer = _Trainer(net if isinstance(net, _Net) else None, options, line)
        self.trainers.append(trainer)
        return trainer

    # -- the result --
    def paste(self) -> Paste:
        trainer = self.trainers[-1] if self.trainers else None
        notes: list[SpecError] = [_error(t.line, f"this trainer is replaced by the one on line {trainer.line}")
                                  for t in self.trainers[:-1]]
        chosen = self.chosen(trainer)
        if chosen is None:
            return Paste([], None, [])
        array, count, made_line, net_name = chosen
        source = array.name or "the list"
        made_from = f"{net_name}.makeLayers({source}) on line {made_line}" if made_line else source
        for other in self.arrays:
            if other is array:
                late = [line for line, before in array.pushes if before >= count]
                if late:
                    notes.append(_error(late[0], f"{_times(array.name + '.push(...)', late)} after {made_from}, "
                                                 "too late for the network; ignored"))
                continue
            if other.items and not other.pushes:
                notes.append(_error(other.line, f"{other.name} = [...] is not the network's layer array "
                                                f"({made_from}); ignored"))
            if other.pushes:
                lines = [line for line, _ in other.pushes]
                notes.append(_error(lines[0], f"{_times(other.name + '.push(...)', lines)} not part of the "
                                              f"network, whose layers come from {made_from}; ignored"))
        if len(notes) > MAX_NOTES:
            notes = notes[:MAX_NOTES] + [SpecError("convnetjs", f"and {len(notes) - MAX_NOTES} more notes")]
        return Paste(array.items[:count], trainer.options if trainer else None, array.lines[:count], notes)

    def chosen(self, trainer: _Trainer | None) -> tuple | None:
        """The layer array, how many of its items are layers, and the line and net of its makeLayers call."""
        if trainer is not None and trainer.net is not None and trainer.net.made:
            made = trainer.net.made
        elif self.last_made is not None:
            if trainer is not None and trainer.net is not None:
                self.errors.append(_error(trainer.line, f"the trainer trains {trainer.net.name}, but "
                                                        f"{trainer.net.name}.makeLayers(...) is never called"))
                return None
            made = self.last_made.made
        else:
            return self.fallback()
        array, count, line, net_name = made
        if count == 0:
            name = array.name or "[]"
            self.errors.append(_error(line, f"{name} is empty when {net_name}.makeLayers({name}) is called: "
                                            "no layer_defs.push({...}) statements found before it"))
            return None
        return made

    def fallback(self) -> tuple | None:
        """No makeLayers call (a paste of only the layers): layer_defs, else the one array of {type: ...}."""
        named = self.scope.get("layer_defs")
        if isinstance(named, _Array) and named.items:
            return named, len(named.items), None, None
        seen, bound = set(), []
        for value in self.scope.values():
            if isinstance(value, _Array) and value.items and id(value) not in seen:
                seen.add(id(value))
                bound.append(value)
        layered = [a for a in bound if any(isinstance(x, dict) and "type" in x for x in a.items)]
        if len(layered) == 1:
            return layered[0], len(layered[0].items), None, None
        if layered:
            names = ", ".join(f"{a.name} (line {a.line})" for a in layered)
            self.errors.append(SpecError("convnetjs", f"several arrays hold layer definitions: {names}; say which "
                                                      "one is the network with net.makeLayers(<that array>)"))
            return None
        held = f"; {', '.join(a.name for a in bound)} hold no {{type: ...}} layer definitions" if bound else ""
        self.errors.append(SpecError("convnetjs", f"no layer_defs.push({{...}}) statements found{held}; the "
                                                  "network is the array handed to net.makeLayers(layer_defs)"))
        return None


def parse(text: str) -> Paste:
    """Extract layer definitions and trainer options from demo source; raise InvalidSpec on anything else."""
    from service.spec.netspec import InvalidSpec

    if not isinstance(text, str):
        raise InvalidSpec([SpecError("convnetjs", "the demo source must be text (a string)")])
    reader = _Reader()
    for line, stmt, problem in _statements(text, reader.errors):
        reader.statement(line, stmt, problem)
    paste = None if reader.errors else reader.paste()
    if reader.errors:
        # in source order (an unclosed comment is found before the statements are read); unplaced ones last
        errors = sorted(reader.errors, key=lambda e: (e.line is None, e.line or 0))
        if len(errors) > MAX_ERRORS:
            errors = errors[:MAX_ERRORS] + [SpecError("convnetjs", f"and {len(errors) - MAX_ERRORS} more problems "
                                                                   "like these")]
        raise InvalidSpec(errors)
    return paste
