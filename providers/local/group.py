"""The template processes a group of functions shares.

Functions whose environments are equal but for what each worker sets for
itself (:func:`.launch.template_groups`) share one template process per code
generation: a :class:`TemplateGroup` starts it (or adopts the one ``sls-py run``
started early), hands it to its functions' :class:`~.workers.FunctionPool`\\ s,
which fork their workers from it, and routes what the process reports (a
worker's exit, its own loss) to them. A template that dies fails every
invocation its workers were running, of whichever function, and the next
invocation of each function starts a new one (once, for the whole group).

Hot reload starts the next generation once for the group: from the spare
template (:meth:`start_spare`) when there is one, else a fresh process. Each
pool that was serving forks its first worker from it before the swap; then all
of them swap at once. In-flight invocations finish on the old workers, and the
old template is stopped when the last of them, of any function, is gone.

A group of one is a function's own template, as before sharing.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from .handles import Template, TemplateFailed, Worker
from .launch import Launch, TemplateEnv

if TYPE_CHECKING:
    from .settings import PoolSettings
    from .workers import FunctionPool


class TemplateGroup:
    """The template processes of the functions of one :class:`~.launch.TemplateEnv`."""

    def __init__(
        self,
        env: TemplateEnv,
        cwd: Path,
        settings: PoolSettings,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.env, self.cwd, self.settings, self.loop = env, cwd, settings, loop
        #: the pools of the group's functions (they add themselves)
        self.pools: list[FunctionPool] = []
        #: the current generation's template: what new workers are forked from
        self.template: Template | None = None
        #: earlier generations', stopped once no worker of theirs is left
        self.old_templates: list[Template] = []
        self.starting: asyncio.Task[Template] | None = None
        #: a template process started before the event loop (see .launch); the
        #: first template adopts it
        self.prestarted: Launch | None = None
        #: hot reload's head start: a template process that has imported the libraries
        #: the app uses (not the app) and waits to import the changed code
        self.spare: Template | None = None
        self.spare_task: asyncio.Task[None] | None = None
        self.closed = False

    # --- for the pools ------------------------------------------------------

    async def current(self) -> Template:
        """The current template, started (once, for every pool asking) if there is
        none; raises :class:`TemplateFailed` when the app does not import."""
        while True:
            template = self.template
            if template is not None and not template.closed:
                return template
            if self.closed:
                raise TemplateFailed("the local server is stopping")
            if self.starting is None:
                self.starting = self.loop.create_task(self._start())
                # its failure is each waiting pool's to report; none may be left waiting
                self.starting.add_done_callback(lambda t: t.cancelled() or t.exception())
            started = await asyncio.shield(self.starting)
            if started is self.template and not started.closed:
                return started
            # lost or replaced by a reload meanwhile: ask again

    def worker_gone(self, w: Worker) -> None:
        """A pool has forgotten ``w``: stop old templates left without workers."""
        w.template.workers.discard(w)
        for t in [t for t in self.old_templates if not t.workers]:
            self.old_templates.remove(t)
            t.close()

    def pool_closed(self) -> None:
        """A pool has closed: once all have, stop every template of the group."""
        if all(p.closed for p in self.pools):
            self.close()

    # --- for the server -------------------------------------------------------

    def serves_http(self) -> bool:
        """Whether one of the group's functions has an HTTP trigger."""
        return any(p.fn.http_triggers() for p in self.pools)

    def last_used(self) -> float:
        """When one of the group's functions last ran (see
        :meth:`.workers.FunctionPool.last_used`)."""
        return max((p.last_used() for p in self.pools), default=0.0)

    async def reload(self) -> Template | None:
        """Serve new invocations from freshly imported code (raises :class:`TemplateFailed`).

        Each pool that serves forks its first worker from the new template before
        the swap, so its first invocation after it does not wait for a fork. Returns
        the new template, ``None`` when there was none to replace (the next start
        imports the new code); cancelled, it leaves no new process behind and the
        old code serving."""
        if self.starting is not None:
            # A template that began starting before the change may have imported the
            # old code: let it finish, then replace it like any running template.
            with contextlib.suppress(asyncio.CancelledError, TemplateFailed):
                await asyncio.shield(self.starting)
        if self.template is None:
            return None  # never started (or failed to): the next start imports the new code
        spare, self.spare = self.spare, None
        if spare is not None and self.spare_task is not None and not self.spare_task.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self.spare_task)  # nearly there, most likely
        if spare is not None and not spare.waiting():
            spare.close()
            spare = None
        new = spare if spare is not None else Template(self)
        firsts: dict[FunctionPool, Worker] = {}
        try:
            if new is spare:
                await new.activate()  # imports only the app: its libraries are imported
            else:
                await new.start()
            for pool in self.pools:
                if pool.template is not None and not pool.closed:
                    firsts[pool] = await new.spawn(pool)
        except BaseException:
            for w in list(new.workers):
                w.kill()
            new.close()
            raise
        if self.closed:  # shut down meanwhile
            for w in firsts.values():
                w.kill()
            new.close()
            return None
        old, self.template = self.template, new
        if old is not None:
            self.old_templates.append(old)
        for pool in self.pools:
            pool.adopt(new, firsts.get(pool))
        for t in [t for t in self.old_templates if not t.workers]:
            self.old_templates.remove(t)
            t.close()
        return new

    def start_spare(self) -> None:
        """Start a spare template (see :attr:`spare`) unless one is there already."""
        if self.closed or self.template is None or self.spare is not None:
            return
        spare = self.spare = Template(self, spare=self.template.preload)

        async def run() -> None:
            try:
                await spare.start()
            except TemplateFailed:
                if self.spare is spare:
                    self.spare = None

        self.spare_task = self.loop.create_task(run())

    def close_spare(self) -> None:
        """Stop the spare template, if there is one."""
        spare, self.spare = self.spare, None
        if self.spare_task is not None:
            self.spare_task.cancel()
            self.spare_task = None
        if spare is not None:
            spare.close()

    def close(self) -> None:
        """Stop every template of the group (their workers die with them)."""
        if self.closed:
            return
        self.closed = True
        if self.starting is not None:
            self.starting.cancel()
        for t in [*self.old_templates, *([self.template] if self.template else [])]:
            t.close()
        self.close_spare()
        if self.prestarted is not None:
            self.prestarted.close()
            self.prestarted = None

    # --- callbacks from the templates ----------------------------------------

    def exited(self, pid: int, status: str) -> None:
        """A worker of one of the pools exited (its pool reports a crash)."""
        for pool in self.pools:
            pool.exited(pid, status)

    def template_lost(self, template: Template) -> None:
        """``template`` exited (or could not fork): every pool serving from it
        starts over on its next invocation (or at once, for the invocations waiting)."""
        if template is self.template:
            self.template = None
        for pool in self.pools:
            pool.template_lost(template)

    # --- internals ---------------------------------------------------------

    async def _start(self) -> Template:
        try:
            template = Template(self, self.prestarted)
            self.prestarted = None
            await template.start()
        finally:
            self.starting = None
        self.template = template
        return template
