#!/usr/bin/env python3
#===- loom_codemeta.py - Token metadata for tree attention on code --------===#
#
# Part of the Loom project.
#
#===----------------------------------------------------------------------===#
#
# This file computes, for a Python source file and a list of token character
# offsets, the per-token index tensors that the tree-attention models read:
# Euler-tour intervals of the owning AST node (syntax mask) and of the
# innermost lexical scope (scope mask), and def-use edges in CSR and packed-bit
# form (data-flow mask). It uses only the standard library so that it runs
# anywhere CI runs. docs/code-metadata.md describes every tensor and rule.
#
#===----------------------------------------------------------------------===#
"""Per-token syntax, scope and data-flow metadata for tree attention.

API:
  compute(source, offsets=None, pad_to=None, ...) -> dict name -> (shape, vals)
  write_safetensors(path, tensors)
Command line: see `loom_codemeta.py --help`.
"""

import argparse
import ast
import bisect
import io
import json
import re
import struct
import sys
import tokenize

PROG = "loom_codemeta"

#: Tensor names, in the order they are written. The models take inputs with
#: exactly these names.
TENSOR_NAMES = ("tin", "tout", "scope_in", "scope_out", "df_indptr",
                "df_indices", "df_bits", "token_start", "token_end")

#: tokenize token types dropped unless a flag keeps them.
_LAYOUT_TYPES = (tokenize.NEWLINE, tokenize.NL, tokenize.INDENT,
                 tokenize.DEDENT)

_COMP_TYPES = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_FUNC_TYPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)

#: Marks "possibly unbound" in a reaching-definitions set.
_UNDEF = -1


class CodeMetaError(Exception):
    """A problem with the inputs, reported as one line without a traceback."""


#===----------------------------------------------------------------------===#
# Source text and positions
#===----------------------------------------------------------------------===#


class _Text:
    """Maps (line, UTF-8 byte column) and (line, char column) to offsets."""

    _NEWLINE = re.compile(r"\r\n|\r|\n")

    def __init__(self, text):
        self.text = text
        self.line_starts = [0]
        for m in self._NEWLINE.finditer(text):
            self.line_starts.append(m.end())
        self._byte_maps = {}

    def char_offset(self, line, col):
        """Offset of a 1-based line and a 0-based character column."""
        if line - 1 >= len(self.line_starts):
            return len(self.text)
        return min(self.line_starts[line - 1] + col, len(self.text))

    def byte_offset(self, line, byte_col):
        """Offset of a 1-based line and a 0-based UTF-8 byte column (ast)."""
        if line - 1 >= len(self.line_starts):
            return len(self.text)
        start = self.line_starts[line - 1]
        table = self._byte_maps.get(line)
        if table is None:
            end = (self.line_starts[line]
                   if line < len(self.line_starts) else len(self.text))
            table = {}
            pos = 0
            for i, ch in enumerate(self.text[start:end]):
                table[pos] = i
                pos += len(ch.encode("utf-8", "surrogatepass"))
            table[pos] = end - start
            self._byte_maps[line] = table
        return start + table.get(byte_col, byte_col)

    def line_col(self, offset):
        """1-based line and column of an offset, for messages and dumps."""
        line = bisect.bisect_right(self.line_starts, offset)
        return line, offset - self.line_starts[line - 1] + 1


def _own_span(node, text):
    if getattr(node, "end_col_offset", None) is None or getattr(
        node, "col_offset", None) is None:
        return None
    return (text.byte_offset(node.lineno, node.col_offset),
            text.byte_offset(node.end_lineno, node.end_col_offset))


def _find_name(text, name, lo, hi, last=False):
    """Span of the first (or last) whole-word `name` in text[lo:hi]."""
    pattern = re.compile(r"(?<!\w)" + re.escape(name) + r"(?!\w)")
    found = None
    for m in pattern.finditer(text, lo, hi):
        found = (m.start(), m.end())
        if not last:
            break
    return found


#===----------------------------------------------------------------------===#
# Tokens
#===----------------------------------------------------------------------===#


def python_tokens(text, keep_comments=False, keep_layout=False):
    """Character offsets of the tokens of Python's tokenize module."""
    positions = _Text(text)
    spans = []
    try:
        readline = io.StringIO(text, newline="").readline
        for tok in tokenize.generate_tokens(readline):
            if tok.type in (tokenize.ENCODING, tokenize.ENDMARKER):
                continue
            if tok.type == tokenize.COMMENT and not keep_comments:
                continue
            if tok.type in _LAYOUT_TYPES and not keep_layout:
                continue
            start = positions.char_offset(*tok.start)
            end = positions.char_offset(*tok.end)
            spans.append((start, max(start, end)))
    except (tokenize.TokenError, SyntaxError) as e:
        raise CodeMetaError("cannot tokenize: %s" % (e.args[0],))
    return spans


def check_offsets(offsets, length):
    """Validates a list of [start, end) pairs against a text length."""
    if not isinstance(offsets, (list, tuple)):
        raise CodeMetaError(
            "offsets must be a list of [start, end] pairs, got %s" %
            type(offsets).__name__)
    result = []
    last_end, last_index = 0, None
    for i, pair in enumerate(offsets):
        if (not isinstance(pair, (list, tuple)) or len(pair) != 2 or
                not all(isinstance(v, int) and not isinstance(v, bool)
                        for v in pair)):
            raise CodeMetaError("offsets[%d] is not a pair of integers: %s" %
                                (i, json.dumps(pair, default=repr)))
        start, end = pair
        if start < 0 or end < start or end > length:
            raise CodeMetaError(
                "offsets[%d] = [%d, %d] is out of range for a source of %d "
                "characters" % (i, start, end, length))
        if start < end:
            if start < last_end:
                raise CodeMetaError(
                    "offsets[%d] = [%d, %d] overlaps or precedes offsets[%d] = "
                    "[%d, %d]; tokens must be disjoint and in order" %
                    (i, start, end, last_index, offsets[last_index][0],
                     last_end))
            last_end, last_index = end, i
        result.append((start, end))
    return result


#===----------------------------------------------------------------------===#
# Syntax tree: spans and Euler tour
#===----------------------------------------------------------------------===#


class _Node:
    __slots__ = ("ast", "parent", "span", "depth", "tin", "tout", "children")

    def __init__(self, node, parent, depth):
        self.ast = node
        self.parent = parent
        self.depth = depth
        self.span = None
        self.children = []
        self.tin = self.tout = -1


def _build_tree(root, text):
    """Wraps every AST node that has a span; spans cover their children."""

    def build(node, parent, depth):
        wrapped = _Node(node, parent, depth)
        span = _own_span(node, text)
        if (parent is not None and isinstance(parent.ast, ast.JoinedStr) and
                span == _own_span(parent.ast, text)):
            # Before Python 3.12 the parts of an f-string carry the span of
            # the whole string; only their children's spans are real.
            span = None
        for child in ast.iter_child_nodes(node):
            sub = build(child, wrapped, depth + 1)
            if sub is None:
                continue
            wrapped.children.append(sub)
            if span is None:
                span = sub.span
            else:
                span = (min(span[0], sub.span[0]), max(span[1], sub.span[1]))
        if span is None:
            return None
        wrapped.span = span
        return wrapped

    tree = build(root, None, 0)
    if tree is None:
        tree = _Node(root, None, 0)
    tree.span = (0, len(text.text))
    counter = 0
    stack = [(tree, False)]
    order = []
    while stack:
        node, done = stack.pop()
        if done:
            node.tout = counter - 1
            continue
        node.tin = counter
        counter += 1
        order.append(node)
        stack.append((node, True))
        for child in reversed(node.children):
            stack.append((child, False))
    return tree, order, counter


#===----------------------------------------------------------------------===#
# Scopes and bindings
#===----------------------------------------------------------------------===#


class _Scope:

    def __init__(self, node, parent):
        self.node = node
        self.parent = parent
        self.children = []
        self.bound = set()
        self.globals = set()
        self.nonlocals = set()
        self.tin = self.tout = -1
        if parent is not None:
            parent.children.append(self)

    @property
    def kind(self):
        return type(self.node).__name__

    @property
    def label(self):
        name = getattr(self.node, "name", None)
        return self.kind + (":" + name if name else "")

    def local(self, name):
        return (name in self.bound and name not in self.globals and
                name not in self.nonlocals)


class _Occ:
    """One occurrence of a name: a definition or a use, with its characters."""
    __slots__ = ("id", "name", "span", "scope", "target")

    def __init__(self, ident, name, span, scope):
        self.id = ident
        self.name = name
        self.span = span
        self.scope = scope
        self.target = scope


class _Collector:
    """Builds the scope tree and finds every binding and use (pass 1)."""

    def __init__(self, text, wrapped):
        self.text = text
        self.src = text.text
        self.spans = {id(w.ast): w.span for w in wrapped}
        self.node_scope = {}
        self.defs = {}  # id(ast node) -> _Occ (binding sites)
        self.uses = {}  # id(ast node) -> _Occ
        self.all_defs = []
        self.scopes = []

    def span(self, node):
        return self.spans.get(id(node))

    def new_scope(self, node, parent):
        scope = _Scope(node, parent)
        self.scopes.append(scope)
        return scope

    def add_def(self, node, name, span, scope, walrus=False):
        if span is None:
            return
        occ = _Occ(len(self.all_defs), name, span, scope)
        if walrus:
            # PEP 572: a walrus in a comprehension binds in the enclosing scope.
            while isinstance(occ.target.node, _COMP_TYPES):
                occ.target = occ.target.parent
        self.all_defs.append(occ)
        self.defs[id(node)] = occ
        occ.target.bound.add(name)

    def add_use(self, node, name, span, scope):
        if span is not None:
            self.uses[id(node)] = _Occ(-1, name, span, scope)

    def run(self, module):
        root = self.new_scope(module, None)
        self.visit(module, root)
        return root

    def visit_all(self, nodes, scope):
        for node in nodes:
            if node is not None:
                self.visit(node, scope)

    def visit(self, node, scope):
        self.node_scope[id(node)] = scope
        if isinstance(node, _FUNC_TYPES):
            self.visit_function(node, scope)
        elif isinstance(node, ast.ClassDef):
            self.visit_all(node.decorator_list, scope)
            self.visit_all(node.bases, scope)
            self.visit_all(node.keywords, scope)
            self.def_by_keyword(node, scope)
            inner = self.new_scope(node, scope)
            self.visit_all(node.body, inner)
        elif isinstance(node, _COMP_TYPES):
            inner = self.new_scope(node, scope)
            for i, gen in enumerate(node.generators):
                self.node_scope[id(gen)] = inner
                self.visit(gen.iter, scope if i == 0 else inner)
                self.visit(gen.target, inner)
                self.visit_all(gen.ifs, inner)
            if isinstance(node, ast.DictComp):
                self.visit_all([node.key, node.value], inner)
            else:
                self.visit(node.elt, inner)
        elif isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                self.add_use(node, node.id, self.span(node), scope)
            else:
                if isinstance(node.ctx, ast.Del):
                    self.add_use(node, node.id, self.span(node), scope)
                    scope.bound.add(node.id)
                else:
                    self.add_def(node, node.id, self.span(node), scope)
        elif isinstance(node, ast.NamedExpr):
            self.visit(node.value, scope)
            target = node.target
            self.node_scope[id(target)] = scope
            self.add_def(target, target.id, self.span(target), scope,
                         walrus=True)
        elif (isinstance(node, ast.AugAssign) and
              isinstance(node.target, ast.Name)):
            target = node.target
            self.node_scope[id(target)] = scope
            self.add_use(target, target.id, self.span(target), scope)
            self.add_def(target, target.id, self.span(target), scope)
            self.visit(node.value, scope)
        elif (isinstance(node, ast.AnnAssign) and
              isinstance(node.target, ast.Name)):
            target = node.target
            self.node_scope[id(target)] = scope
            scope.bound.add(target.id)
            if node.value is not None:
                self.add_def(target, target.id, self.span(target), scope)
            self.visit(node.annotation, scope)
            self.visit_all([node.value], scope)
        elif isinstance(node, ast.Global):
            scope.globals.update(node.names)
        elif isinstance(node, ast.Nonlocal):
            scope.nonlocals.update(node.names)
        elif isinstance(node, ast.alias):
            self.def_alias(node, scope)
        elif isinstance(node, ast.ExceptHandler):
            self.visit_all([node.type], scope)
            if node.name:
                span = self.span(node)
                lo = span[0] if node.type is None else self.span(node.type)[1]
                found = _find_name(self.src, node.name, lo, span[1])
                self.add_def(node, node.name, found, scope)
            self.visit_all(node.body, scope)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar, ast.MatchMapping)):
            self.generic(node, scope)
            name = getattr(node, "name", None) or getattr(node, "rest", None)
            span = self.span(node)
            if name and span:
                found = _find_name(self.src, name, span[0], span[1], last=True)
                self.add_def(node, name, found, scope)
        else:
            self.generic(node, scope)

    def generic(self, node, scope):
        for child in ast.iter_child_nodes(node):
            self.visit(child, scope)

    def def_by_keyword(self, node, scope):
        span = self.span(node)
        own = _own_span(node, self.text)
        lo = own[0] if own else span[0]
        self.add_def(node, node.name,
                     _find_name(self.src, node.name, lo, span[1]), scope)

    def def_alias(self, node, scope):
        if node.name == "*":
            return
        span = self.span(node)
        if span is None:
            return
        if node.asname:
            name = node.asname
            found = _find_name(self.src, name, span[0], span[1], last=True)
        else:
            name = node.name.split(".")[0]
            found = _find_name(self.src, name, span[0], span[1])
        self.add_def(node, name, found, scope)

    def visit_function(self, node, scope):
        self.visit_all(getattr(node, "decorator_list", []), scope)
        args = node.args
        self.visit_all(args.defaults, scope)
        self.visit_all(args.kw_defaults, scope)
        every = args.posonlyargs + args.args + args.kwonlyargs
        every += [a for a in (args.vararg, args.kwarg) if a is not None]
        for a in every:
            self.visit_all([a.annotation], scope)
        self.visit_all([getattr(node, "returns", None)], scope)
        if not isinstance(node, ast.Lambda):
            self.def_by_keyword(node, scope)
        inner = self.new_scope(node, scope)
        self.node_scope[id(args)] = inner
        for a in every:
            self.node_scope[id(a)] = inner
            span = self.span(a)
            if span is not None:
                self.add_def(a, a.arg, (span[0], span[0] + len(a.arg)), inner)
        if isinstance(node, ast.Lambda):
            self.visit(node.body, inner)
        else:
            self.visit_all(node.body, inner)


def _resolve(scope, name, root):
    """The scope whose binding of `name` a use in `scope` reads, or None."""
    if name in scope.globals:
        return root if name in root.bound else None
    if name in scope.nonlocals or not scope.local(name):
        if scope is root:
            return root if name in root.bound else None
        current = scope.parent
        while current is not None:
            if current is root:
                return root if name in root.bound else None
            if isinstance(current.node, ast.ClassDef):
                current = current.parent
                continue
            if name in current.globals:
                return root if name in root.bound else None
            if current.local(name):
                return current
            current = current.parent
        return None
    return scope


#===----------------------------------------------------------------------===#
# Reaching definitions (pass 2)
#===----------------------------------------------------------------------===#


def _merge(*states):
    """Union of reaching-definition states; None is an unreachable point."""
    live = [s for s in states if s is not None]
    if not live:
        return None
    keys = set()
    for s in live:
        keys.update(s)
    undef = frozenset([_UNDEF])
    return {k: frozenset().union(*(s.get(k, undef) for s in live))
            for k in keys}


class _Flow:
    """Walks one scope's statements in order, tracking its local names."""

    def __init__(self, info, scope, reach):
        self.info = info
        self.scope = scope
        self.reach = reach  # id(use node) -> set of def ids
        self.state = {}
        self.loops = []  # [break states, continue states]
        self.nested = {}  # id -> nested scope node, in order, once each

    # -- helpers -------------------------------------------------------------
    def current(self):
        if self.state is None:
            self.state = {}
        return self.state

    def gen(self, node):
        occ = self.info.defs.get(id(node))
        if occ is not None and occ.target is self.scope:
            self.current()[occ.name] = frozenset([occ.id])

    def use(self, node):
        occ = self.info.uses.get(id(node))
        if occ is None:
            return
        scope = self.scope
        target = _resolve(scope, occ.name, self.info.root)
        found = set()
        if target is scope:
            reaching = (self.state or {}).get(occ.name, frozenset([_UNDEF]))
            found.update(d for d in reaching if d != _UNDEF)
            found.update(self.info.foreign.get((id(scope), occ.name), ()))
            if _UNDEF in reaching and isinstance(scope.node, ast.ClassDef):
                found.update(self.info.by_scope.get(
                    (id(self.info.root), occ.name), ()))
        elif target is not None:
            found.update(self.info.by_scope.get((id(target), occ.name), ()))
        self.reach.setdefault(id(node), set()).update(found)

    # -- statements ----------------------------------------------------------
    def block(self, stmts):
        for stmt in stmts:
            self.stmt(stmt)

    def stmt(self, node):
        if isinstance(node, (ast.If)):
            self.expr(node.test)
            entry = self.copy()
            self.block(node.body)
            after_body = self.state
            self.state = entry
            self.block(node.orelse)
            self.state = _merge(after_body, self.state)
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            self.expr(node.iter)
            breaks = self.loop(
                lambda: (self.target(node.target), self.block(node.body)))
            self.block(node.orelse)
            self.state = _merge(self.state, *breaks)
        elif isinstance(node, ast.While):
            breaks = self.loop(
                lambda: (self.expr(node.test), self.block(node.body)))
            self.expr(node.test)
            self.block(node.orelse)
            self.state = _merge(self.state, *breaks)
        elif isinstance(node, (ast.Try, getattr(ast, "TryStar", ast.Try))):
            entry = self.copy()
            seen = [entry]
            for s in node.body:
                self.stmt(s)
                seen.append(self.copy())
            self.block(node.orelse)
            ends = [self.state]
            for handler in node.handlers:
                self.state = _merge(*seen)
                self.expr(handler.type)
                self.gen(handler)
                self.block(handler.body)
                ends.append(self.state)
            self.state = _merge(*ends)
            if node.finalbody:
                self.state = _merge(self.state, *seen)
                self.block(node.finalbody)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                self.expr(item.context_expr)
                self.target(item.optional_vars)
            self.block(node.body)
        elif isinstance(node, getattr(ast, "Match", ())):
            self.expr(node.subject)
            entry = self.copy()
            ends = [entry]
            for case in node.cases:
                self.state = dict(entry) if entry is not None else None
                self.pattern(case.pattern)
                self.expr(case.guard)
                self.block(case.body)
                ends.append(self.state)
            self.state = _merge(*ends)
        elif isinstance(node, (ast.Return, ast.Raise)):
            for child in ast.iter_child_nodes(node):
                self.expr(child)
            self.state = None
        elif isinstance(node, (ast.Break, ast.Continue)):
            if self.loops:
                which = 0 if isinstance(node, ast.Break) else 1
                self.loops[-1][which].append(self.copy())
            self.state = None
        elif isinstance(node, ast.Assign):
            self.expr(node.value)
            for t in node.targets:
                self.target(t)
        elif isinstance(node, ast.AugAssign):
            if isinstance(node.target, ast.Name):
                self.use(node.target)
            else:
                self.expr(node.target)
            self.expr(node.value)
            self.target(node.target)
        elif isinstance(node, ast.AnnAssign):
            self.expr(node.annotation)
            self.expr(node.value)
            if node.value is not None:
                self.target(node.target)
        elif isinstance(node, ast.Delete):
            for t in node.targets:
                self.expr(t)
                if (isinstance(t, ast.Name) and
                    _resolve(self.scope, t.id, self.info.root) is self.scope):
                    self.current()[t.id] = frozenset([_UNDEF])
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef,
                               ast.ClassDef)):
            self.definition(node)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for a in node.names:
                self.gen(a)
        elif isinstance(node, (ast.Global, ast.Nonlocal, ast.Pass)):
            pass
        else:
            for child in ast.iter_child_nodes(node):
                self.expr(child)

    def copy(self):
        return dict(self.state) if self.state is not None else None

    def loop(self, body):
        entry = self.copy()
        head = entry
        self.loops.append(([], []))
        for _ in range(64):
            self.loops[-1][0].clear()
            self.loops[-1][1].clear()
            self.state = dict(head) if head is not None else None
            body()
            new_head = _merge(entry, self.state, *self.loops[-1][1])
            if new_head == head:
                break
            head = new_head
        self.state = head
        return self.loops.pop()[0]

    def target(self, node):
        if node is None:
            return
        if isinstance(node, ast.Name):
            self.gen(node)
        elif isinstance(node, (ast.Tuple, ast.List)):
            for elt in node.elts:
                self.target(elt)
        elif isinstance(node, ast.Starred):
            self.target(node.value)
        else:
            self.expr(node)

    def pattern(self, node):
        if node is None:
            return
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.pattern):
                self.pattern(child)
            else:
                self.expr(child)
        self.gen(node)

    def definition(self, node):
        for d in node.decorator_list:
            self.expr(d)
        if isinstance(node, ast.ClassDef):
            for child in node.bases + node.keywords:
                self.expr(child)
        else:
            self.function_header(node)
        self.nested[id(node)] = node
        self.gen(node)

    def function_header(self, node):
        args = node.args
        for d in args.defaults + [d for d in args.kw_defaults if d is not None]:
            self.expr(d)
        every = args.posonlyargs + args.args + args.kwonlyargs
        every += [a for a in (args.vararg, args.kwarg) if a is not None]
        for a in every:
            self.expr(a.annotation)
        self.expr(getattr(node, "returns", None))

    # -- expressions ---------------------------------------------------------
    def expr(self, node):
        if node is None:
            return
        if isinstance(node, ast.Name):
            self.use(node)
            if not isinstance(node.ctx, ast.Load):
                self.gen(node)
        elif isinstance(node, ast.NamedExpr):
            self.expr(node.value)
            self.gen(node.target)
        elif isinstance(node, ast.Lambda):
            self.function_header(node)
            self.nested[id(node)] = node
        elif isinstance(node, _COMP_TYPES):
            self.expr(node.generators[0].iter)
            self.nested[id(node)] = node
        else:
            for child in ast.iter_child_nodes(node):
                self.expr(child)

    # -- one scope -----------------------------------------------------------
    def run(self):
        node = self.scope.node
        if isinstance(node, ast.Module):
            self.block(node.body)
        elif isinstance(node, ast.ClassDef):
            self.block(node.body)
        elif isinstance(node, _FUNC_TYPES):
            args = node.args
            for a in args.posonlyargs + args.args + args.kwonlyargs + [
                args.vararg, args.kwarg]:
                if a is not None:
                    self.gen(a)
            if isinstance(node, ast.Lambda):
                self.expr(node.body)
            else:
                self.block(node.body)
        else:  # A comprehension: one pass per generator, then the element.
            for i, gen in enumerate(node.generators):
                if i > 0:
                    self.expr(gen.iter)
                self.target(gen.target)
                for cond in gen.ifs:
                    self.expr(cond)
            if isinstance(node, ast.DictComp):
                self.expr(node.key)
                self.expr(node.value)
            else:
                self.expr(node.elt)
        return list(self.nested.values())


class _Info:
    """Pass-1 results shared by the per-scope walks."""

    def __init__(self, collector, root):
        self.root = root
        self.defs = collector.defs
        self.uses = collector.uses
        self.scope_of_node = {id(s.node): s for s in collector.scopes}
        # Resolve where each binding lives (global/nonlocal declarations).
        self.by_scope = {}
        self.foreign = {}
        root.bound.update(n for s in collector.scopes for n in s.globals)
        for occ in collector.all_defs:
            where = occ.target
            if occ.name in where.globals:
                occ.target = root
            elif occ.name in where.nonlocals:
                occ.target = _resolve(where, occ.name, root) or where
            key = (id(occ.target), occ.name)
            self.by_scope.setdefault(key, []).append(occ.id)
            if occ.target is not occ.scope:
                self.foreign.setdefault(key, []).append(occ.id)


def _reaching(collector, root):
    info = _Info(collector, root)
    reach = {}
    pending = [root]
    while pending:
        scope = pending.pop()
        for node in _Flow(info, scope, reach).run():
            pending.append(info.scope_of_node[id(node)])
    return reach


#===----------------------------------------------------------------------===#
# Tensors
#===----------------------------------------------------------------------===#


def _number_scopes(root):
    counter = 0
    order = []
    stack = [(root, False)]
    while stack:
        scope, done = stack.pop()
        if done:
            scope.tout = counter - 1
            continue
        scope.tin = counter
        counter += 1
        order.append(scope)
        stack.append((scope, True))
        for child in reversed(scope.children):
            stack.append((child, False))
    return counter


def _to_i32(v):
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def analyze(source, offsets=None, pad_to=None, keep_comments=False,
            keep_layout=False, filename="<source>"):
    """Runs the analysis; returns (tensors, per-token records for dumps)."""
    if sys.version_info < (3, 10):
        raise CodeMetaError("needs Python 3.10 or later (positions of import "
                            "aliases, match statements)")
    if source.startswith("\ufeff"):
        raise CodeMetaError("the source starts with a byte-order mark; "
                            "remove it so that offsets count the same "
                            "characters")
    try:
        module = ast.parse(source, filename=filename)
    except SyntaxError as e:
        raise CodeMetaError("%s:%s:%s: %s" % (filename, e.lineno or 0,
                                              e.offset or 0, e.msg))
    except (RecursionError, MemoryError):
        # CPython's parser reports deep nesting with either of these.
        raise CodeMetaError("%s: the source nests too deeply" % filename)
    except ValueError as e:
        raise CodeMetaError("%s: cannot parse: %s" % (filename, e))
    text = _Text(source)
    if offsets is None:
        spans = python_tokens(source, keep_comments, keep_layout)
    else:
        spans = check_offsets(offsets, len(source))
    real = len(spans)
    total = real if pad_to is None else pad_to
    if total < real:
        raise CodeMetaError("--pad-to %d is smaller than the %d tokens" %
                            (pad_to, real))

    tree, order, num_nodes = _build_tree(module, text)
    collector = _Collector(text, order)
    root_scope = collector.run(module)
    num_scopes = _number_scopes(root_scope)
    reach = _reaching(collector, root_scope)

    # Owner: deepest node whose span contains the token (ties: later in DFS).
    nonempty = [i for i in range(real) if spans[i][0] < spans[i][1]]
    starts = [spans[i][0] for i in nonempty]
    owner = [tree] * real
    for node in order:
        lo, hi = node.span
        k = bisect.bisect_left(starts, lo)
        while k < len(nonempty) and starts[k] < hi:
            i = nonempty[k]
            if spans[i][1] <= hi and node.depth >= owner[i].depth:
                owner[i] = node
            k += 1

    def tokens_over(span):
        lo, hi = span
        k = max(0, bisect.bisect_right(starts, lo) - 1)
        out = []
        while k < len(nonempty) and starts[k] < hi:
            i = nonempty[k]
            if spans[i][1] > lo:
                out.append(i)
            k += 1
        return out

    def_tokens = {}
    for occ in collector.all_defs:
        def_tokens[occ.id] = tokens_over(occ.span)
    rows = [set() for _ in range(total)]
    for node_id, occ in collector.uses.items():
        keys = set()
        for d in reach.get(node_id, ()):
            keys.update(def_tokens[d])
        if keys:
            for i in tokens_over(occ.span):
                rows[i].update(keys)
    for i in range(total):
        rows[i].add(i)

    tin, tout, sin, sout, scope_labels = [], [], [], [], []
    for i in range(real):
        node = owner[i]
        tin.append(node.tin)
        tout.append(node.tout)
        while node is not None and id(node.ast) not in collector.node_scope:
            node = node.parent
        scope = collector.node_scope[id(node.ast)] if node else root_scope
        sin.append(scope.tin)
        sout.append(scope.tout)
        scope_labels.append(scope.label)
    for p in range(total - real):
        tin.append(num_nodes + p)
        tout.append(num_nodes + p)
        sin.append(num_scopes + p)
        sout.append(num_scopes + p)

    indptr, indices = [0], []
    words = (total + 31) // 32
    bits = [0] * (total * words)
    for i, row in enumerate(rows):
        packed = {}
        for j in sorted(row):
            indices.append(j)
            packed[j // 32] = packed.get(j // 32, 0) | 1 << (j % 32)
        for w, word in packed.items():
            bits[i * words + w] = _to_i32(word)
        indptr.append(len(indices))
    token_start = [s for s, _ in spans] + [-1] * (total - real)
    token_end = [e for _, e in spans] + [-1] * (total - real)

    tensors = {
        "tin": ([total], tin),
        "tout": ([total], tout),
        "scope_in": ([total], sin),
        "scope_out": ([total], sout),
        "df_indptr": ([total + 1], indptr),
        "df_indices": ([len(indices)], indices),
        "df_bits": ([total, words], bits),
        "token_start": ([total], token_start),
        "token_end": ([total], token_end),
    }
    records = []
    for i in range(total):
        if i < real:
            s, e = spans[i]
            line, col = text.line_col(s)
            rec = {"i": i, "text": source[s:e], "at": "%d:%d" % (line, col),
                   "node": type(owner[i].ast).__name__, "tin": tin[i],
                   "tout": tout[i], "scope": scope_labels[i]}
        else:
            rec = {"i": i, "text": None, "at": None, "node": "<pad>",
                   "tin": tin[i], "tout": tout[i], "scope": "<pad>"}
        rec.update({"scope_in": sin[i], "scope_out": sout[i],
                    "edges": sorted(rows[i])})
        records.append(rec)
    summary = {"tokens": real, "padded": total, "nodes": num_nodes,
               "scopes": num_scopes, "edges": len(indices)}
    return tensors, records, summary


def compute(source, offsets=None, pad_to=None, keep_comments=False,
            keep_layout=False):
    """Tensors for `source`: name -> (shape, flat list of int32 values).

    `offsets` is a list of [start, end) character offsets, or None for the
    tokens of Python's tokenize module. Raises CodeMetaError on bad input.
    """
    return analyze(source, offsets, pad_to, keep_comments, keep_layout)[0]


def write_safetensors(path, tensors):
    """Writes int32 tensors (name -> (shape, values)) as a safetensors file."""
    header, blobs, offset = {}, [], 0
    for name in list(TENSOR_NAMES) + sorted(set(tensors) - set(TENSOR_NAMES)):
        if name not in tensors:
            continue
        shape, vals = tensors[name]
        data = struct.pack("<%di" % len(vals), *vals)
        header[name] = {"dtype": "I32", "shape": list(shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


#===----------------------------------------------------------------------===#
# Command line
#===----------------------------------------------------------------------===#


def _read_source(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CodeMetaError("cannot read '%s': %s" % (path, e.strerror or e))
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        text = data.decode(encoding)
    except (SyntaxError, LookupError, UnicodeDecodeError) as e:
        raise CodeMetaError("%s: cannot decode the source: %s" % (path, e))
    return text[1:] if text.startswith("\ufeff") else text


def _read_offsets(path):
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)
    except OSError as e:
        raise CodeMetaError("cannot read '%s': %s" % (path, e.strerror or e))
    except ValueError as e:
        raise CodeMetaError("%s: not valid JSON: %s" % (path, e))


def _dump(records, summary):
    lines = ['{"summary": %s,' % json.dumps(summary), '"tokens": [']
    lines.append(",\n".join(json.dumps(r, ensure_ascii=False) for r in records))
    lines.append("]}")
    return "\n".join(lines)


class _Parser(argparse.ArgumentParser):
    """Reports a bad command line in one line, with exit code 1."""

    def error(self, message):
        sys.stderr.write("%s: error: %s\n" % (PROG, message))
        sys.exit(1)


def main(argv=None):
    parser = _Parser(
        prog=PROG,
        description="Per-token syntax, scope and data-flow tensors of a Python "
        "source file for tree attention (docs/code-metadata.md).")
    parser.add_argument("source", help="the Python source file")
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="write the int32 tensors to this safetensors file")
    parser.add_argument("--offsets", metavar="FILE.json",
                        help="token [start, end) character offsets (a JSON "
                        "list of pairs); default: Python's tokenize tokens")
    parser.add_argument("--pad-to", metavar="N", type=int,
                        help="pad the token count S to N")
    parser.add_argument("--keep-comments", action="store_true",
                        help="keep COMMENT tokens (default tokenizer only)")
    parser.add_argument("--keep-layout", action="store_true",
                        help="keep NEWLINE, NL, INDENT and DEDENT tokens "
                        "(default tokenizer only)")
    parser.add_argument("--json", action="store_true",
                        help="print a per-token dump to stdout")
    args = parser.parse_args(argv)
    try:
        if args.output is None and not args.json:
            raise CodeMetaError("nothing to do: give -o FILE and/or --json")
        if args.pad_to is not None and args.pad_to < 0:
            raise CodeMetaError("--pad-to must not be negative")
        if args.offsets and (args.keep_comments or args.keep_layout):
            raise CodeMetaError("--keep-comments and --keep-layout apply only "
                                "without --offsets")
        source = _read_source(args.source)
        offsets = _read_offsets(args.offsets) if args.offsets else None
        tensors, records, summary = analyze(
            source, offsets, args.pad_to, args.keep_comments,
            args.keep_layout, filename=args.source)
        if args.output:
            try:
                write_safetensors(args.output, tensors)
            except OSError as e:
                raise CodeMetaError("cannot write '%s': %s" %
                                    (args.output, e.strerror or e))
        if args.json:
            out = (_dump(records, summary) + "\n").encode("utf-8")
            sys.stdout.buffer.write(out)
            sys.stdout.flush()
    except CodeMetaError as e:
        sys.stderr.write("%s: error: %s\n" % (PROG, e))
        return 1
    except BrokenPipeError:
        return 1
    except RecursionError:
        sys.stderr.write("%s: error: %s: the source nests too deeply\n" %
                         (PROG, args.source))
        return 1
    return 0


if __name__ == "__main__":
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20000))
    sys.exit(main())
