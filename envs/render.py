"""``OffloadEnv(render_mode="rgb_array")``: the episode so far drawn as one RGB image (matplotlib's Agg canvas).

Five panels share the episode's time axis: the uplink (the trace's true throughput and the device's own estimate),
the upload backlog against the deadline, the action of every frame (one row per action, coloured by action; a
black cross where an offload came back late or was refused, so the local answer was used), whether the answer
used was correct, and the age of the cached answer. Everything drawn comes from what the env already returns or
keeps: the step's info, the observation (the device's estimate) and the kernel's decision-time signals (backlog,
cache age).

Drawing is incremental: the figure and its artists are built once per env and ``image`` only hands them the
frames recorded so far, so a frame costs one Agg draw of a fixed small canvas (see ``tests/test_render.py`` and
the README for the measured time of a recorded episode).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Polygon
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont

LOCAL_COLOUR = "#7f7f7f"
TEACHER_COLOUR = "#9467bd"
REUSE_COLOUR = "#ff7f0e"
CORRECT_COLOUR = (0.17, 0.63, 0.17, 1.0)
WRONG_COLOUR = (0.84, 0.15, 0.16, 1.0)
SIZE_PX = (800, 600)
DPI = 100
TITLE_STRIP_PX = 40  # the band above the top panel (top=0.925 of 600 px leaves 45)
TITLE_PX = 14  # 10 pt at 100 dpi


def action_colours(action_names: Sequence[str]) -> list[str]:
    """One colour per action: local grey, offloads blue (darker = higher resolution), teacher purple, reuse orange."""
    from matplotlib import colormaps

    offloads = [a for a in action_names if a.startswith("offload@")]
    blues = colormaps["Blues"]
    shade = {a: blues(0.45 + 0.5 * i / max(len(offloads) - 1, 1)) for i, a in enumerate(offloads)}
    named = {"local": LOCAL_COLOUR, "teacher": TEACHER_COLOUR, "reuse": REUSE_COLOUR}
    colours = []
    for a in action_names:
        c = shade[a] if a in shade else named.get(a, "#000000")
        colours.append(c if isinstance(c, str) else "#{:02x}{:02x}{:02x}".format(*(int(255 * v) for v in c[:3])))
    return colours


class EpisodeDrawing:
    """The records of one episode and the figure that draws them; ``begin`` at reset, ``record`` per step."""

    def __init__(self, action_names: Sequence[str], observation_fields: Sequence[str], fps: float,
                 deadline_s: float, episode_frames: int):
        self.action_names = list(action_names)
        self.fps = float(fps)
        self.deadline_s = float(deadline_s)
        self.n_max = int(episode_frames)
        self._est_field = list(observation_fields).index("est_log_mbps")
        n = self.n_max
        self.true_mbps = np.zeros(n)
        self.est_mbps = np.zeros(n)
        self.backlog_s = np.zeros(n)
        self.cache_age_s = np.full(n, np.nan)  # NaN where the cache was empty
        self.action = np.zeros(n, np.int64)
        self.correct = np.zeros(n, bool)
        self.fell_back = np.zeros(n, bool)  # an offload whose answer was late or that was refused
        self.bytes = np.zeros(n)
        self.n = 0
        self.title = ""
        self._pending = (0.0, 0.0, float("nan"))  # decision-time state of the next frame
        self._build()

    # ---- records -------------------------------------------------------------------------------------------
    def _decision_state(self, obs: NDArray, signals: Any) -> tuple[float, float, float]:
        est = 10.0 ** (2.0 * float(obs[self._est_field]))
        age = float(signals["cache_age_s"]) if int(signals["cache_held"]) else float("nan")
        return est, float(signals["backlog_s"]), age

    def begin(self, title: str, obs: NDArray, signals: Any) -> None:
        """A new episode: forget the frames drawn, keep the decision-time state of its first frame."""
        self.n = 0
        self.title = title
        self._pending = self._decision_state(obs, signals)
        self._answers[:] = 0.0
        self._limits = None  # the new episode's ranges start small again
        self._background = None

    def record(self, info: Mapping[str, Any], obs: NDArray, signals: Any) -> None:
        """One step: its info, with the state the frame was decided in; ``obs``/``signals`` are the next frame's."""
        t = self.n
        if t >= self.n_max:
            return
        self.est_mbps[t], self.backlog_s[t], self.cache_age_s[t] = self._pending
        self.true_mbps[t] = info["true_mbps"]
        self.action[t] = info["action"]
        self.correct[t] = info["correct"]
        self.fell_back[t] = bool(info["late"]) or bool(info["refused"])
        self.bytes[t] = info["bytes"]
        self._answers[0, t] = CORRECT_COLOUR if info["correct"] else WRONG_COLOUR
        self.n = t + 1
        self._pending = self._decision_state(obs, signals)

    # ---- figure ----------------------------------------------------------------------------------------------
    def _build(self) -> None:
        w, h = SIZE_PX
        self.figure = fig = Figure(figsize=(w / DPI, h / DPI), dpi=DPI)
        self.canvas = FigureCanvasAgg(fig)
        grid = fig.add_gridspec(5, 1, height_ratios=[2.2, 1.6, 2.6, 0.45, 1.5], left=0.13, right=0.79,
                                top=0.925, bottom=0.085, hspace=0.22)
        axes = [fig.add_subplot(grid[i]) for i in range(5)]
        for ax in axes[1:]:
            ax.sharex(axes[0])
        self.ax_link, self.ax_backlog, self.ax_action, self.ax_answer, self.ax_cache = axes
        t_end = self.n_max / self.fps
        axes[0].set_xlim(0.0, t_end)
        for ax in axes[:-1]:
            ax.tick_params(labelbottom=False)
        for ax in axes:
            ax.tick_params(labelsize=8)
            ax.grid(True, axis="x", color="#dddddd", linewidth=0.6)
        legend = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.02), "fontsize": 7.5, "frameon": False,
                  "borderaxespad": 0.0, "handlelength": 1.6}
        # the title changes every frame: Pillow draws it (Agg's text layout alone would double a frame's cost)
        self._title_font = ImageFont.truetype(font_manager.findfont("DejaVu Sans"), TITLE_PX)
        self._title_text = ""
        self._times = np.arange(self.n_max) / self.fps

        ax = self.ax_link
        (self._true_line,) = ax.plot([], [], color="#222222", linewidth=1.2, drawstyle="steps-post",
                                     label="trace\nthroughput")
        (self._est_line,) = ax.plot([], [], color="#1f77b4", linewidth=1.2, linestyle="--",
                                    label="device's\nestimate")
        ax.set_ylabel("uplink\n(Mbit/s)", fontsize=9)
        ax.legend(**legend)

        ax = self.ax_backlog
        self._backlog_fill = Polygon(np.zeros((2, 2)), closed=True, facecolor="#aec7e8", edgecolor="#1f77b4",
                                     linewidth=0.8, label="upload\nbacklog")
        ax.add_patch(self._backlog_fill)
        self._deadline_line = ax.axhline(self.deadline_s, color="#d62728", linewidth=1.2, linestyle="--",
                   label=f"deadline\n({self.deadline_s * 1000:.0f} ms)")
        ax.set_ylabel("backlog\n(s)", fontsize=9)
        ax.legend(**legend)

        ax = self.ax_action
        colours = action_colours(self.action_names)
        self._action_lines = [ax.plot([], [], linestyle="none", marker="|", markersize=9, markeredgewidth=1.6,
                                      color=c)[0] for c in colours]
        (self._fallback_line,) = ax.plot([], [], linestyle="none", marker="x", markersize=4, markeredgewidth=0.9,
                                         color="black", label="late or\nrefused:\nlocal answer\nused")
        n_a = len(self.action_names)
        ax.set_ylim(n_a - 0.5, -0.5)  # local on top
        ax.set_yticks(range(n_a), self.action_names)
        for label, c in zip(ax.get_yticklabels(), colours):
            label.set_color(c)
            label.set_fontweight("bold")
        ax.legend(handles=[self._fallback_line], **legend)

        ax = self.ax_answer
        self._answers = np.zeros((1, self.n_max, 4))
        self._answer_image = ax.imshow(self._answers, aspect="auto", interpolation="nearest",
                                       extent=(0.0, t_end, 0.0, 1.0))
        ax.set_yticks([])
        ax.set_ylabel("answer", fontsize=9, rotation=0, ha="right", va="center")
        ax.legend(handles=[Line2D([], [], color=CORRECT_COLOUR, linewidth=5, label="correct"),
                           Line2D([], [], color=WRONG_COLOUR, linewidth=5, label="wrong")],
                  ncol=2, columnspacing=0.8, **{**legend, "handlelength": 1.0, "bbox_to_anchor": (1.01, 0.9)})

        ax = self.ax_cache
        (self._cache_line,) = ax.plot([], [], color=REUSE_COLOUR, linewidth=1.2, label="age of the\ncached answer")
        ax.set_ylabel("cache age\n(s)", fontsize=9)
        ax.set_xlabel("time in episode (s)", fontsize=9)
        ax.legend(**legend)

        # drawn every frame over a background of everything else, redrawn only when a y range grows
        self._dynamic = [self._true_line, self._est_line, self._backlog_fill, self._deadline_line,
                         *self._action_lines,
                         self._fallback_line, self._answer_image, self._cache_line]
        self._background = None
        self._limits: tuple[float, float, float] | None = None

    def _update(self) -> None:
        n, t = self.n, self._times[:self.n]
        dt = 1.0 / self.fps
        x_steps = np.append(t, n * dt) if n else t
        self._true_line.set_data(x_steps, np.append(self.true_mbps[:n], self.true_mbps[n - 1]) if n else [])
        self._est_line.set_data(t, self.est_mbps[:n])
        backlog = self.backlog_s[:n]
        self._backlog_fill.set_xy(np.concatenate([[[0.0, 0.0]], np.c_[t, backlog], [[t[-1] if n else 0.0, 0.0]]]))
        action = self.action[:n]
        for a, line in enumerate(self._action_lines):
            line.set_data(t[action == a], action[action == a])
        fell = self.fell_back[:n]
        self._fallback_line.set_data(t[fell], action[fell])
        self._answer_image.set_data(self._answers)
        age = self.cache_age_s[:n]
        self._cache_line.set_data(t, age)
        accuracy = f"accuracy {self.correct[:n].mean():.3f}" if n else "accuracy -"
        sent = self.bytes[:n]
        self._title_text = (f"{self.title}   frame {n}/{self.n_max}   {accuracy}   "
                             f"{int((sent > 0).sum())} uploads, {sent.sum() / 1e6:.2f} MB")

        held = age[np.isfinite(age)]
        limits = (_nice_ceiling(1.1 * max(float(self.true_mbps[:n].max(initial=0.0)),
                                         float(self.est_mbps[:n].max(initial=0.0)), 1.0)),
                  _nice_ceiling(1.15 * max(float(backlog.max(initial=0.0)), 2.0 * self.deadline_s)),
                  _nice_ceiling(1.1 * max(float(held.max(initial=0.0)), 1.0)))
        if self._limits is not None:  # ranges only grow within an episode, so the background rarely changes
            limits = tuple(max(a, b) for a, b in zip(limits, self._limits))
        if limits != self._limits:
            self._limits = limits
            self.ax_link.set_ylim(0.0, limits[0])
            self.ax_backlog.set_ylim(0.0, limits[1])
            self.ax_cache.set_ylim(0.0, limits[2])
            self._background = None

    def image(self) -> NDArray[np.uint8]:
        """The episode so far as an RGB uint8 array [H, W, 3] (a new array each call)."""
        self._update()
        if self._background is None:
            for artist in self._dynamic:
                artist.set_visible(False)
            self.canvas.draw()
            self._background = self.canvas.copy_from_bbox(self.figure.bbox)
            for artist in self._dynamic:
                artist.set_visible(True)
        self.canvas.restore_region(self._background)
        for artist in self._dynamic:
            self.figure.draw_artist(artist)
        rgb = np.asarray(self.canvas.buffer_rgba())[:, :, :3].copy()
        strip = Image.new("RGB", (rgb.shape[1], TITLE_STRIP_PX), "white")
        ImageDraw.Draw(strip).text((0.46 * rgb.shape[1], TITLE_STRIP_PX / 2), self._title_text, fill="black",
                                   font=self._title_font, anchor="mm")
        rgb[:TITLE_STRIP_PX] = np.asarray(strip)
        return rgb


def _nice_ceiling(x: float) -> float:
    """The smallest of 1, 1.5, 2, 3, 4, 5, 6, 8 times a power of ten that is >= x (a stable axis limit)."""
    power = 10.0 ** np.floor(np.log10(x))
    for m in (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0):
        if m * power >= x * (1 - 1e-9):
            return float(m * power)
    return float(10.0 * power)
