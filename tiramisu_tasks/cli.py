"""The ``tiramisu`` console script: Fabric's program over our namespace.

Two things stock ``fab`` does not do:

* ``-H a,b`` means ``--host a,b`` (:class:`TiramisuExecutor`): inventory
  names, groups, aliases and ``user@host:port``, resolved by the task and run
  in parallel (fabfile/ makes ``fab`` use the same executor).
* project config: a Program built with ``namespace=`` does not look for
  invoke.yaml/fabric.yaml beside the tasks, so ``update_config`` loads the
  current directory's project config before Fabric reads ``ssh_config_path``.
"""

import os
import re

import invoke
from fabric import Config, Executor
from fabric.main import Fab
from invoke.exceptions import Exit, ParseError

from . import __version__
from .namespace import ns


class TiramisuExecutor(Executor):
    """``-H a,b`` is ``--host a,b``: each task runs once, with the whole list.

    Fabric's own Executor runs a task once per ``-H`` host, one after another,
    each with a Connection it built from the bare string (no groups, no
    inventory, no summary). Here the list goes to the task's hosts parameter
    instead, so the task's resolver and parallel runner (:mod:`hostrun`) see
    it exactly as they see ``--host``. Both given: a usage error unless they
    name the same hosts. Used by ``tiramisu`` and by ``fab`` (fabfile/ sets
    it); ``inv`` has no ``-H`` of its own, but every task's ``--host`` answers
    to ``-H`` too (:class:`taskkit.TiramisuTask`).
    """

    def expand_calls(self, calls, apply_hosts=True):
        hosts = core_hosts(self.core) if apply_hosts else None
        if not hosts:
            return invoke.Executor.expand_calls(self, calls)
        expanded = []
        for call in calls:
            if isinstance(call, invoke.Task):
                call = invoke.Call(task=call)
            expanded.extend(invoke.Executor.expand_calls(self, call.pre))
            expanded.append(call_with_hosts(call, hosts))
            expanded.extend(invoke.Executor.expand_calls(self, call.post))
        if self.core.remainder:
            raise Exit("tiramisu: -H HOST -- COMMAND is not supported: run commands with ssh", code=2)
        return expanded


def core_hosts(core):
    """The core ``-H``/``--hosts`` value, or None (``inv`` has no such flag)."""
    try:
        return core[0].args.hosts.value
    except (AttributeError, KeyError, IndexError):
        return None


def call_with_hosts(call, hosts):
    """``call`` with ``hosts`` (the ``-H`` text) as its hosts argument; Exit 2 when
    the task acts on no host or ``--host`` names other hosts."""
    import inspect

    from .connect import split_host_list
    from .taskkit import host_parameter

    body = call.task.body
    name = getattr(call.task, "cli_name", call.task.name)
    param = host_parameter(f"{body.__module__}.{body.__name__}", inspect.signature(body).parameters)
    if param is None:
        raise _usage_exit(call, name, f"tiramisu: {name} acts on no host: drop -H", takes_hosts=False)
    given = call.kwargs.get(param)
    if given and set(split_host_list(given)) != set(split_host_list(hosts)):
        flag = "--host" if param == "host" else param.upper()
        raise _usage_exit(call, name, f"tiramisu: -H {hosts} and {flag} {given} name different hosts: give one of them")
    call.kwargs = {**call.kwargs, param: hosts}
    return call


def _usage_exit(call, name, message, takes_hosts=True):
    """Exit 2 with ``message``; under ``--json`` the task's one document is
    printed first (the task never runs, so its own wrapper cannot)."""
    import json as jsonlib

    from .taskkit import error_document

    if call.kwargs.get("json"):
        print(jsonlib.dumps(error_document(name, message, 2, takes_hosts), indent=2, sort_keys=True), flush=True)
    return Exit(message, code=2)


def usage_message(text):
    """Invoke's parse error as the one line `tiramisu:` users see (pure)."""
    m = re.match(r"No idea what '(.*)' is!$", text)
    if m:
        return f"tiramisu: no task or option '{m.group(1)}' (tiramisu --list shows the tasks)"
    return f"tiramisu: {text[:1].lower()}{text[1:]}"


def _as_usage_error(step):
    """Run one parse step; a parse error or a core option's bad value becomes exit 2."""
    try:
        return step()
    except ParseError as exc:
        raise Exit(usage_message(str(exc)), code=2) from None
    except ValueError as exc:  # e.g. -t abc: Invoke/Fabric call int() on core option values
        raise Exit(f"tiramisu: bad value for a core option: {exc}", code=2) from None


# Tasks whose first positional argument may be left out (Invoke's parser has no
# optional positional arguments): the empty string stands for "not given".
OPTIONAL_POSITIONAL = {"history"}


def fill_optional_positionals(tokens, task_names=OPTIONAL_POSITIONAL):
    """``history --host H`` -> ``history '' --host H`` (pure); a task name given as
    a flag's value (``--name history``) is left alone."""
    out = list(tokens)
    for i, token in enumerate(tokens):
        if token in task_names and (i == 0 or not tokens[i - 1].startswith("-")):
            following = tokens[i + 1] if i + 1 < len(tokens) else None
            if following is None or following.startswith("-"):
                out.insert(i + 1 + (len(out) - len(tokens)), "")
    return out


class TiramisuProgram(Fab):
    """Fabric's program; usage errors exit 2 with one `tiramisu:` line (Invoke's exit 1)."""

    def parse_core(self, argv):
        return _as_usage_error(lambda: super(TiramisuProgram, self).parse_core(argv))

    def parse_collection(self):
        return _as_usage_error(super().parse_collection)

    def parse_tasks(self):
        self.core.unparsed = fill_optional_positionals(self.core.unparsed)
        return _as_usage_error(super().parse_tasks)

    def parse_cleanup(self):
        return _as_usage_error(super().parse_cleanup)

    def update_config(self):
        def update():
            self.config.set_project_location(os.getcwd())
            self.config.load_project(merge=False)
            super(TiramisuProgram, self).update_config()

        return _as_usage_error(update)


def make_program():
    return TiramisuProgram(
        name="Tiramisu",
        binary="tiramisu",
        binary_names=["tiramisu"],
        version=__version__,
        namespace=ns,
        executor_class=TiramisuExecutor,
        config_class=Config,
    )


def main():
    make_program().run()
