"""``MessagePane``: the read-only conversation view, built for bursts.

Speed: lines are not inserted one by one.  ``add_*`` calls append (text, tags) pairs to a
batch, and ``flush`` (once per drained batch of events) inserts the whole batch with a single
``Text.insert`` call, so Tcl is crossed once per batch instead of several times per message.
The pane keeps at most ``scrollback`` lines; older ones are trimmed from the top.

Layout of the text: received lines are inserted at the mark ``incoming``; lines the user sent
that are still pending sit below it, so a pending line stays at the bottom until its echo
arrives, and is then deleted and replaced by the echoed line in the server's order.

Following: ``_following`` (True at the start) says whether the view sticks to the newest
line.  Only the person changes it - scrolling with the wheel, the scrollbar or the keys sets
it to "is the view at the bottom now"; reaching the bottom any way sets it - never a resize
or a flush, so joining a busy chat, a reconnect's history or narrowing the window (which
rewraps every line) all keep showing the newest line.  Lines that arrive while the person
reads older ones start at the mark ``unread``; "New messages" goes there first, then to the
end.

Untrusted text: every string from the network goes through ``display.tk_safe`` (control
characters as escapes, no lone surrogates, no bidi overrides).
"""

from __future__ import annotations

import logging
import re
import tkinter as tk
import webbrowser
from datetime import date, datetime
from tkinter import font as tkfont
from tkinter import ttk

from common.message import Message
from common.timestamps import now_utc
from gui import theme
from gui.display import tk_safe

log = logging.getLogger(__name__)

_LINK = re.compile(r"\b(?:https?://|www\.)[^\s<>\"'`]+[^\s<>\"'`.,;:!?)\]}]", re.IGNORECASE)
_TRIM_SLACK = 0.1  # trim only when this much over the limit, so trimming is rare and cheap
_PENDING_SUFFIX = "  (sending…)"

# The whole of a flush in Tcl, one call per batch (see ``MessagePane.flush``):
# path limit trim_at follow settled_tags text tags text tags ...
_FLUSH = "::tkchat::pane_flush"
_FLUSH_PROC = """
namespace eval ::tkchat {}
proc ::tkchat::pane_flush {w limit trim_at follow settled args} {
    $w configure -state normal
    if {[llength $args]} {
        $w insert incoming {*}$args
    }
    foreach tag $settled {
        set ranges [$w tag ranges $tag]
        if {[llength $ranges]} {
            $w delete [lindex $ranges 0] [lindex $ranges end]
        }
        $w tag delete $tag
    }
    set lines [lindex [split [$w index incoming] .] 0]
    if {$lines > $trim_at} {
        $w delete 1.0 [expr {$lines - $limit}].0
    }
    $w configure -state disabled
    if {$follow} {
        $w yview moveto 1.0
    }
}
"""


def _tk_supports_non_bmp(widget: tk.Misc) -> bool:
    """Tk 8.6.10+ stores characters outside the BMP safely; older 8.6 releases crash."""
    try:
        level = str(widget.tk.call("info", "patchlevel"))
        parts = tuple(int(p) for p in level.split(".")[:3])
    except (tk.TclError, ValueError):
        return False
    return parts >= (8, 6, 10)


class MessagePane(ttk.Frame):
    """See the module docstring.  Only the Tk thread may call it (like every widget)."""

    def __init__(self, master: tk.Misc, text_font: tkfont.Font, scrollback: int = 5000) -> None:
        super().__init__(master)
        self.scrollback = scrollback
        self.text_font = text_font
        self.bold_font = tkfont.Font(font=text_font)
        self.bold_font.configure(weight="bold")
        self.small_font = tkfont.Font(font=text_font)
        self.sync_fonts()
        self.text = tk.Text(
            self,
            wrap="word",
            font=text_font,
            undo=False,
            borderwidth=0,
            highlightthickness=0,
            padx=10,
            pady=8,
            spacing1=2,
            spacing3=2,
            cursor="arrow",
            takefocus=True,
        )
        self.scrollbar = ttk.Scrollbar(self, orient="vertical", command=self._scrollbar_moved)
        self.text.configure(yscrollcommand=self._on_scroll)
        self.text.grid(row=0, column=0, sticky="nsew")
        self.scrollbar.grid(row=0, column=1, sticky="ns")
        self.rowconfigure(0, weight=1)
        self.columnconfigure(0, weight=1)
        self.text.mark_set("incoming", "end-1c")
        self.text.mark_gravity("incoming", "right")
        self.text.configure(state="disabled")
        self.new_button = ttk.Button(
            self, text="New messages ↓", style="Accent.TButton", command=self.show_new
        )
        self._new_shown = False
        self._following = True
        self._unread_marked = False  # the mark "unread" is at the first line not yet seen
        self._unread_visited = False  # "New messages" went there once; next press: the end
        self._batch: list[str | tuple[str, ...]] = []
        self._settled: list[str] = []
        self._pending_tags: set[str] = set()
        self._last_day: date | None = None
        self._own = ""
        self._mention: re.Pattern[str] | None = None
        self._nick_tags: dict[str, str] = {}
        self._clock_cache: tuple[int, str, date] = (-1, "", date.min)
        self._non_bmp = _tk_supports_non_bmp(self)
        self._unread_in_batch = False
        self.lines_added = 0  # counters for tests and the benchmark
        self.flushes = 0
        self.text.tk.eval(_FLUSH_PROC)
        self._configure_tags()
        self.bind("<<ThemeChanged>>", lambda _e: self.apply_palette(), add=True)
        self.apply_palette()
        self.text.tag_bind("link", "<Button-1>", self._open_link)
        self.text.tag_bind("link", "<Enter>", lambda _e: self.text.configure(cursor="hand2"))
        self.text.tag_bind("link", "<Leave>", lambda _e: self.text.configure(cursor="arrow"))
        for key in ("<Prior>", "<Next>", "<Home>", "<End>"):
            self.text.bind(key, self._scroll_key)
        # The Text's own bindings scroll after ours run: look once they are done.
        for sequence in (
            "<MouseWheel>",
            "<Button-4>",
            "<Button-5>",
            "<ButtonRelease-1>",
            "<KeyRelease>",
        ):
            self.text.bind(sequence, self._after_user_scroll, add=True)
        self.text.bind("<Configure>", self._resized, add=True)

    # ---------------------------------------------------------------- setup
    def sync_fonts(self) -> None:
        """Follow a size change of the main font (Ctrl+plus/minus)."""
        size = int(self.text_font.actual("size"))
        family = self.text_font.actual("family")
        self.bold_font.configure(family=family, size=size)
        self.small_font.configure(family=family, size=max(6, size - 1))
        if hasattr(self, "text"):
            indent = self.small_font.measure("00:00  ")
            for tag in ("line", "info", "error"):
                self.text.tag_configure(tag, lmargin2=indent)
            self.text.tag_configure("cont", lmargin1=indent, lmargin2=indent)

    def set_own_name(self, name: str) -> None:
        """Own lines are marked; others' lines that mention ``name`` are highlighted."""
        self._own = name
        self._mention = (
            re.compile(rf"(?<![A-Za-z0-9]){re.escape(name)}(?![A-Za-z0-9])", re.IGNORECASE)
            if name
            else None
        )

    def _configure_tags(self) -> None:
        text = self.text
        text.tag_configure("time", font=self.small_font)
        text.tag_configure("nick", font=self.bold_font)
        text.tag_configure("own", font=self.bold_font)
        text.tag_configure("day", justify="center", spacing1=10, spacing3=6)
        text.tag_configure("unread", justify="center", spacing1=6, spacing3=6)
        text.tag_configure("link", underline=True)
        for tag in ("line", "info", "error", "cont", "pending", "mention", "time", "link", "sel"):
            text.tag_configure(tag)
            text.tag_raise(tag)  # in this order: a later tag's colour wins
        self.sync_fonts()

    def apply_palette(self) -> None:
        """Colours for the theme in force (the Text is a classic widget, sv-ttk skips it)."""
        p = theme.palette(self)
        text = self.text
        text.configure(
            background=p.background,
            foreground=p.foreground,
            insertbackground=p.foreground,
            selectbackground=p.select_bg,
            selectforeground=p.foreground,
            inactiveselectbackground=p.select_bg,
        )
        text.tag_configure("time", foreground=p.muted)
        text.tag_configure("own", foreground=p.own)
        text.tag_configure("info", foreground=p.info)
        text.tag_configure("error", foreground=p.error)
        text.tag_configure("pending", foreground=p.muted)
        text.tag_configure("link", foreground=p.link)
        text.tag_configure("mention", background=p.mention_bg)
        text.tag_configure("day", foreground=p.day)
        text.tag_configure("unread", foreground=p.error)
        for index, colour in enumerate(p.nicks):
            text.tag_configure(f"nick{index}", foreground=colour)

    # ---------------------------------------------------------------- adding
    def add_message(self, message: Message, own: bool = False) -> bool:
        """Queue a chat line; True if it mentions the user (for notifications)."""
        when = message.timestamp
        clock = self._clock(when)
        name = tk_safe(message.user, self._non_bmp) or "?"
        body = tk_safe(message.text, self._non_bmp)
        mention = not own and self._mention is not None and self._mention.search(body) is not None
        line: tuple[str, ...] = ("line", "mention") if mention else ("line",)
        nick = ("own", *line) if own else ("nick", self._nick_tag(name), *line)
        self._batch += (clock, ("time", *line), name, nick, "  ", line)
        self._add_body(body, line)
        self.lines_added += 1
        return mention

    def add_info(self, text: str, error: bool = False, when: datetime | None = None) -> None:
        kind = "error" if error else "info"
        clock = self._clock(when or now_utc())
        mark = "⚠ " if error else "• "
        self._batch += (clock, ("time", kind), mark + tk_safe(text, self._non_bmp) + "\n", (kind,))
        self.lines_added += 1

    def add_unread_marker(self) -> None:
        """A line where the user left off; any older marker goes."""
        if self._unread_in_batch:
            return
        self._remove_tagged("unread")
        self._batch += ("──── new messages since you looked ────\n", ("unread",))
        self._unread_in_batch = True

    def add_pending(self, nonce: str, text: str) -> None:
        """Show a sent message below the received ones until ``settle`` replaces it."""
        self.flush()
        tag = f"p{nonce}"
        self._pending_tags.add(tag)
        body = tk_safe(text, self._non_bmp)
        tags = ("line", "pending", tag)
        self.text.configure(state="normal")
        first = not self.text.compare("incoming", "<", "end-1c")
        start = self.text.index("end-1c")
        self.text.insert(
            "end",
            self._clock(now_utc()),
            ("time", *tags),
            self._own or "me",
            ("own", *tags),
            "  " + body,
            tags,
            _PENDING_SUFFIX + "\n",
            ("time", *tags),
        )
        if first:  # the mark was at the very end and moved past the new line: put it back
            self.text.mark_set("incoming", start)
        self.text.configure(state="disabled")
        self.scroll_to_end()

    def settle(self, nonce: str) -> None:
        """The echo of a pending message arrived; its line goes at the next flush."""
        self._settled.append(f"p{nonce}")

    def _add_body(self, body: str, line: tuple[str, ...]) -> None:
        """The text after the name; lines after the first are indented under the text."""
        if "\n" not in body:
            self._add_segment(body + "\n", line)
            return
        first, *rest = body.split("\n")
        self._add_segment(first + "\n", line)
        cont = ("cont", *line)
        for part in rest:
            self._add_segment(part + "\n", cont)

    def _add_segment(self, text: str, tags: tuple[str, ...]) -> None:
        if "://" not in text and "www." not in text.lower():
            self._batch += (text, tags)
            return
        start = 0
        for match in _LINK.finditer(text):
            if match.start() > start:
                self._batch += (text[start : match.start()], tags)
            self._batch += (match.group(), ("link", *tags))
            start = match.end()
        self._batch += (text[start:], tags)

    def _clock(self, when: datetime) -> str:
        """``HH:MM  `` in local time, plus a day separator line when the day changes.

        Cached per minute: in a burst most messages share their minute, and astimezone +
        formatting is a measurable share of the per-message cost.
        """
        minute = int(when.timestamp()) // 60
        cached_minute, clock, day = self._clock_cache
        if minute != cached_minute:
            local = when.astimezone()
            clock = f"{local.hour:02d}:{local.minute:02d}  "
            day = local.date()
            self._clock_cache = (minute, clock, day)
        if day != self._last_day:
            self._last_day = day
            label = "Today" if day == date.today() else f"{day:%A, %d %B %Y}"
            self._batch += (f"──── {label} ────\n", ("day",))
        return clock

    def _nick_tag(self, name: str) -> str:
        tag = self._nick_tags.get(name)
        if tag is None:
            tag = f"nick{theme.nick_index(name, theme.LIGHT)}"
            if len(self._nick_tags) < 10000:
                self._nick_tags[name] = tag
        return tag

    # ------------------------------------------------------------- flushing
    def flush(self) -> int:
        """Show everything queued, trim, keep following; returns the (text, tags) pairs added.

        All of it is one Tcl call (``_FLUSH_PROC``).  That matters under load: tkinter lets go
        of the GIL for every Tcl call and must win it back from the network threads after,
        which can take milliseconds each time while they are busy.
        """
        if not self._batch and not self._settled:
            return 0
        batch, self._batch = self._batch, []
        settled, self._settled = self._settled, []
        self._pending_tags.difference_update(settled)
        self._unread_in_batch = False
        self.flushes += 1
        limit = self.scrollback
        trim_at = int(limit * (1 + _TRIM_SLACK))
        path = str(self.text)
        following = self._following
        if batch and not following and not self._unread_marked and not self._unread_visited:
            self.text.mark_set("unread", "incoming")
            self.text.mark_gravity("unread", "left")
            self._unread_marked = True
        try:
            self.text.tk.call(_FLUSH, path, limit, trim_at, int(following), settled, *batch)
        except (tk.TclError, UnicodeError):
            # One bad string must not lose the rest: insert pairwise, skip what fails.
            log.warning("a line could not be shown; inserting one by one", exc_info=True)
            for index in range(0, len(batch), 2):
                pair = batch[index : index + 2]
                try:
                    self.text.tk.call(_FLUSH, path, limit, trim_at, int(following), (), *pair)
                except (tk.TclError, UnicodeError):
                    continue
        if batch and not following:
            self._show_new()
        return len(batch) // 2

    def _remove_tagged(self, tag: str) -> None:
        ranges = self.text.tag_ranges(tag)
        if ranges:
            self.text.configure(state="normal")
            self.text.delete(ranges[0], ranges[-1])
            self.text.configure(state="disabled")

    def clear(self) -> None:
        """Empty the pane (``/clear``, a new connection); pending lines stay, they are not
        sent yet.  The view follows the newest line again."""
        self.flush()
        self.text.configure(state="normal")
        self.text.delete("1.0", "incoming")
        self.text.configure(state="disabled")
        self._last_day = None
        self._set_following(True)

    # ------------------------------------------------------------- scrolling
    def at_bottom(self) -> bool:
        """The last line is fully in view.  Asked of the layout, not of ``yview``: after a
        resize Tk estimates the fractions for a while (0.99 with the end in view)."""
        if float(self.text.yview()[1]) >= 0.999:
            return True
        info = self.text.dlineinfo("end-1c")
        return info is not None and int(info[1]) + int(info[3]) <= self.text.winfo_height()

    @property
    def following(self) -> bool:
        return self._following

    def scroll_to_end(self) -> None:
        self.text.yview_moveto(1.0)
        self._set_following(True)

    def show_new(self) -> None:
        """ "New messages": the first unread line at the top, or the end if it is in view."""
        if self._unread_marked:
            self._unread_marked = False
            self._unread_visited = True
            top = self.text.index("@0,0")
            if self.text.compare("unread", ">", top) and self.text.bbox("unread") is None:
                self.text.yview("unread")
                self._after_user_scroll()
                return
        self.scroll_to_end()

    def page(self, pages: int) -> None:
        """Scroll by pages (Page Up/Down, also from the input box)."""
        self.text.yview_scroll(pages, "pages")
        self._after_user_scroll()

    def _set_following(self, following: bool) -> None:
        self._following = following
        if following:
            self._unread_marked = self._unread_visited = False
            if self._new_shown:
                self.new_button.place_forget()
                self._new_shown = False

    def _show_new(self) -> None:
        if not self._new_shown:
            self.new_button.place(relx=0.5, rely=1.0, anchor="s", y=-12)
            self._new_shown = True

    def _after_user_scroll(self, _event: object = None) -> None:
        """The person scrolled: follow if they are at the bottom now, else stay put."""
        self.text.after_idle(self._look_where_we_are)

    def _look_where_we_are(self) -> None:
        try:
            self._set_following(self.at_bottom())
        except tk.TclError:  # the pane went away meanwhile
            pass

    def _scrollbar_moved(self, *args: str) -> None:
        self.text.yview(*args)
        self._set_following(self.at_bottom())

    def _resized(self, _event: object) -> None:
        """Every line rewraps: if we were following, the newest line stays in view."""
        if self._following:
            self.text.yview_moveto(1.0)
            self.text.after_idle(self._keep_following)

    def _keep_following(self) -> None:
        if self._following and self.text.winfo_exists():
            self.text.yview_moveto(1.0)

    def _on_scroll(self, first: float | str, last: float | str) -> None:
        self.scrollbar.set(first, last)
        if not self._following and float(last) >= 0.999:
            self._set_following(True)

    def _scroll_key(self, event: tk.Event[tk.Text]) -> str:
        if event.keysym in ("Prior", "Next"):
            self.page(-1 if event.keysym == "Prior" else 1)
        elif event.keysym == "Home":
            self.text.yview_moveto(0.0)
            self._after_user_scroll()
        else:
            self.scroll_to_end()
        return "break"

    # ----------------------------------------------------------------- links
    def _open_link(self, event: tk.Event[tk.Text]) -> None:
        index = self.text.index(f"@{event.x},{event.y}")
        found = self.text.tag_prevrange("link", f"{index}+1c")
        if not found:
            return
        url = self.text.get(found[0], found[1])
        if not url.lower().startswith(("http://", "https://")):
            url = "https://" + url
        log.info("opening %s", url)
        webbrowser.open(url, new=2)

    # ----------------------------------------------------------------- tests
    def content(self) -> str:
        """All text shown (tests and the failure dumps read this)."""
        return str(self.text.get("1.0", "end-1c"))

    # ------------------------------ older pages, search results (gui/conversation_view.py)
    def show_line(self, index: str) -> None:
        """Bring a line into view and select it (a search result).  Like a person's scroll,
        it ends following unless the line is at the bottom."""
        self.text.tag_remove("sel", "1.0", "end")
        self.text.tag_add("sel", f"{index} linestart", f"{index} lineend")
        self.text.see(index)
        self._set_following(self.at_bottom())

    def prepend(self, messages: list[Message], own_name: str = "") -> None:
        """Put older messages (a history page, oldest first) above everything shown,
        keeping the view still: the first visible line stays the first visible line."""
        if not messages:
            return
        self.flush()
        saved_batch, saved_day = self._batch, self._last_day
        self._batch, self._last_day = [], None
        try:
            for message in messages:
                own = bool(own_name) and message.user.lower() == own_name.lower()
                self.add_message(message, own)
            batch = self._batch
        finally:
            self._batch, self._last_day = saved_batch, saved_day
        text = self.text
        line, column = text.index("@0,0").split(".")
        added = sum(str(chunk).count("\n") for chunk in batch[::2])
        days = [batch[i] for i in range(0, len(batch), 2) if batch[i + 1] == ("day",)]
        text.configure(state="normal")
        if days and "day" in text.tag_names("1.0") and text.get("1.0", "2.0") == days[-1]:
            text.delete("1.0", "2.0")  # the page ends on the day the pane began with
            added -= 1
            if line == "1":  # that day line was the top one: keep the line under it still
                line, column = "2", "0"
        text.tk.call(text, "insert", "1.0", *batch)
        text.configure(state="disabled")
        text.yview(f"{int(line) + added}.{column}")
