#!/usr/bin/env python3
"""Image viewer (an interactive job): the selected datasets' TIFF datafiles, and any
selected TIFF datafiles, read through IDS with the user's session and shown one at a time
in a Tk window, scaled to it. Previous/Next (or the arrow keys, Home and End) page
through them; the file's name, size and pixel dimensions are shown under the image.
A dataset without TIFFs, or a file that cannot be read, gets a message in the window."""

from __future__ import annotations

import contextlib
import io
import queue
import sys
import threading
import tkinter as tk
from collections import OrderedDict

from icat.ids import DataSelection
from PIL import Image, ImageTk, UnidentifiedImageError

from ijpweb.jobscript import IcatError, IjpArgumentParser, icat_client, ids_client

TITLE = "IJP image viewer"
TIFF_SUFFIXES = (".tif", ".tiff")
MAX_BYTES = 256 * 1024 * 1024  # a bigger file is named, not read into memory
Image.MAX_IMAGE_PIXELS = 200_000_000  # Pillow refuses bombs past this: the window says so
BACKGROUND = "#2b2b2b"
MAX_SHOWN = (3840, 2160)  # the largest desktop
CACHED = 8  # images kept read


def is_tiff(name: str) -> bool:
    return name.lower().endswith(TIFF_SUFFIXES)


def human(size: int) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError  # unreachable


def find_tiffs(icat, dataset_ids: list[int], datafile_ids: list[int]) -> list[dict]:
    """The TIFF datafiles to show, each once: the datasets' by name, then the chosen ones;
    each with its dataset's name in ``"dataset_name"``."""
    found: dict[int, dict] = {}
    names: dict[int, str] = {}

    def dataset_name(ident) -> str:
        if ident not in names:
            got = icat.search(f"SELECT ds FROM Dataset ds WHERE ds.id = {int(ident)}") if ident else []
            names[ident] = got[0]["name"] if got else "?"
        return names[ident]

    def add(df: dict, dataset) -> None:
        if is_tiff(df.get("name", "")) and df["id"] not in found:
            found[df["id"]] = dict(df, dataset_name=dataset_name(dataset))

    for dataset in dataset_ids:
        files = icat.search(f"SELECT df FROM Datafile df WHERE df.dataset.id = {int(dataset)}")
        for df in sorted(files, key=lambda df: (df.get("name", ""), df["id"])):
            add(df, dataset)
    for datafile in datafile_ids:
        for df in icat.search(f"SELECT df FROM Datafile df WHERE df.id = {int(datafile)} INCLUDE df.dataset"):
            add(df, (df.get("dataset") or {}).get("id"))
    return list(found.values())


def displayable(image: Image.Image) -> Image.Image:
    """An 8-bit image Tk can show: 16-bit and float greyscale stretched to 0..255."""
    image.seek(0)
    if image.mode in ("1", "L", "RGB", "RGBA"):
        return image.copy()
    if image.mode in ("P", "LA", "CMYK", "YCbCr", "LAB", "HSV"):
        return image.convert("RGBA" if image.mode in ("P", "LA") else "RGB")
    grey = image.convert("F") if image.mode != "F" else image
    low, high = grey.getextrema()
    span = (high - low) or 1.0
    return grey.point(lambda v: (v - low) * (255.0 / span)).convert("L")


def fetch(ids, df: dict) -> Image.Image:
    """One datafile's image, read through IDS (at most MAX_BYTES)."""
    buf = io.BytesIO()
    with ids.getData(DataSelection({"datafileIds": [df["id"]]})) as data:
        while chunk := data.read(1 << 16):
            buf.write(chunk)
            if buf.tell() > MAX_BYTES:
                raise ValueError(f"it is larger than {human(MAX_BYTES)}, more than this viewer reads")
    size = buf.tell()
    buf.seek(0)
    image = Image.open(buf)
    image.load()
    shown = displayable(image)
    shown.thumbnail(MAX_SHOWN)  # (here, off Tk's thread: each redraw then scales at most this)
    shown.info["ijp_size"] = size
    shown.info["ijp_dims"] = f"{image.width}×{image.height} {image.mode}"
    return shown


class Viewer:
    def __init__(self, root: tk.Tk, ids, files: list[dict], message: str | None = None):
        self.root, self.ids, self.files = root, ids, files
        self.index = 0
        # the images read (the last few: paging through a thousand big TIFFs keeps at most
        # CACHED in memory), or why one cannot be read; one reader thread, on the newest wish
        self.cache: OrderedDict[int, Image.Image | str] = OrderedDict()
        self.results: queue.Queue = queue.Queue()
        self.wanted: queue.Queue = queue.Queue()
        threading.Thread(target=self.reader, daemon=True).start()
        self.photo = None
        root.configure(background=BACKGROUND)
        root.minsize(320, 240)
        # no window manager draws a title bar on a job's desktop: the window shows its own
        self.heading = tk.Label(root, text=TITLE, background=BACKGROUND, foreground="white",
                                font=("TkDefaultFont", 14, "bold"), anchor="w")  # fmt: skip
        self.heading.pack(side=tk.TOP, fill=tk.X, padx=8, pady=(6, 0))
        bar = tk.Frame(root, background=BACKGROUND)
        bar.pack(side=tk.BOTTOM, fill=tk.X)
        self.prev = tk.Button(bar, text="◀ Previous", command=lambda: self.step(-1))
        self.prev.pack(side=tk.LEFT, padx=6, pady=6)
        self.next = tk.Button(bar, text="Next ▶", command=lambda: self.step(1))
        self.next.pack(side=tk.RIGHT, padx=6, pady=6)
        self.status = tk.Label(bar, text="", background=BACKGROUND, foreground="white", anchor="center")
        self.status.pack(side=tk.LEFT, fill=tk.X, expand=True)
        self.canvas = tk.Canvas(root, background=BACKGROUND, highlightthickness=0)
        self.canvas.pack(side=tk.TOP, fill=tk.BOTH, expand=True)
        self.canvas.bind("<Configure>", lambda _e: self.render())
        for key, delta in (("<Left>", -1), ("<Right>", 1), ("<Prior>", -1), ("<Next>", 1)):
            root.bind(key, lambda _e, d=delta: self.step(d))
        root.bind("<Home>", lambda _e: self.go(0))
        root.bind("<End>", lambda _e: self.go(len(self.files) - 1))
        if message or not files:
            self.say(message or "No TIFF datafiles were selected.", f"{TITLE} — no images")
            for button in (self.prev, self.next):
                button.configure(state=tk.DISABLED)
        else:
            self.go(0)
        root.after(50, self.poll)

    def title(self, text: str) -> None:
        self.root.title(text)
        self.heading.configure(text=text)

    def say(self, text: str, title: str) -> None:
        self.title(title)
        if text != getattr(self, "message", None):
            print(f"the window says: {text}", flush=True)
        self.photo = None
        self.canvas.delete("all")
        width, height = max(self.canvas.winfo_width(), 320), max(self.canvas.winfo_height(), 200)
        self.canvas.create_text(width // 2, height // 2, text=text, fill="white", width=width - 40,
                                justify=tk.CENTER, tags="message")  # fmt: skip
        self.message = text

    def step(self, delta: int) -> None:
        if self.files:
            self.go((self.index + delta) % len(self.files))

    def go(self, index: int) -> None:
        self.index = index
        df = self.files[index]
        self.prev.configure(state=tk.NORMAL if len(self.files) > 1 else tk.DISABLED)
        self.next.configure(state=tk.NORMAL if len(self.files) > 1 else tk.DISABLED)
        if df["id"] in self.cache:
            self.cache.move_to_end(df["id"])
        else:
            self.wanted.put(df)
        self.render()

    def reader(self) -> None:
        """Read what is wanted, one at a time; of several wishes only the newest (the
        others are asked for again if they are shown again)."""
        while True:
            df = self.wanted.get()
            with contextlib.suppress(queue.Empty):
                while True:
                    df = self.wanted.get_nowait()
            self.results.put((df["id"], self.load(df)))

    def load(self, df: dict) -> Image.Image | str:
        try:
            got: Image.Image | str = fetch(self.ids, df)
        except IcatError as e:
            got = f"{df['name']} cannot be read: {e.message}"
        except UnidentifiedImageError:
            got = f"{df['name']} cannot be read: it is not a TIFF image (or not one this viewer knows)."
        except Image.DecompressionBombError:
            got = f"{df['name']} cannot be read: it has more than {Image.MAX_IMAGE_PIXELS} pixels."
        except Exception as e:  # noqa: BLE001 - any reader's failure becomes the window's message
            got = f"{df['name']} cannot be read: {e.__class__.__name__}: {e}"
        return got

    def poll(self) -> None:
        changed = False
        while True:
            try:
                key, got = self.results.get_nowait()
            except queue.Empty:
                break
            self.cache[key] = got
            self.cache.move_to_end(key)
            while len(self.cache) > CACHED:
                self.cache.popitem(last=False)
            changed = changed or (self.files and key == self.files[self.index]["id"])
        if changed:
            self.render()
        self.root.after(50, self.poll)

    def render(self) -> None:
        if not self.files:
            if getattr(self, "message", None):
                self.say(self.message, self.root.title())
            return
        df = self.files[self.index]
        where = f"{df['dataset_name']}, {self.index + 1} of {len(self.files)}"
        title = f"{TITLE} — {df['name']}"
        got = self.cache.get(df["id"])
        if not isinstance(got, Image.Image):
            self.say(got or f"Reading {df['name']}…", title)
            self.status.configure(text=f"{df['name']} ({where})")
            return
        self.title(title)
        width, height = max(self.canvas.winfo_width(), 1), max(self.canvas.winfo_height(), 1)
        scale = min(width / got.width, height / got.height)
        size = (max(1, int(got.width * scale)), max(1, int(got.height * scale)))
        # small images are enlarged pixel for pixel, large ones reduced smoothly
        shown = got.resize(size, Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.LANCZOS)
        self.photo = ImageTk.PhotoImage(shown)
        self.canvas.delete("all")
        self.canvas.create_image(width // 2, height // 2, image=self.photo, anchor=tk.CENTER, tags="image")
        size_text = human(got.info["ijp_size"])
        self.status.configure(text=f"{df['name']} — {size_text}, {got.info['ijp_dims']} ({where})")


def main() -> int:
    args = IjpArgumentParser(description=__doc__).parse_args()
    root = tk.Tk(className="IjpImageViewer")
    root.title(TITLE)
    root.geometry(f"{max(root.winfo_screenwidth(), 320)}x{max(root.winfo_screenheight(), 240)}+0+0")
    files, ids, message = [], None, None
    try:
        icat, ids = icat_client(args), ids_client(args)
        files = find_tiffs(icat, args.datasetIds, args.datafileIds)
        if not files:
            chosen = ", ".join(str(i) for i in args.datasetIds) or "none"
            message = f"The selection has no TIFF datafiles (datasets: {chosen})."
    except IcatError as e:
        message = f"The catalog refused: {e.message}"
    except (ValueError, OSError) as e:
        message = f"The catalog cannot be reached: {e}"
    if message:
        print(message, file=sys.stderr)
    print(f"image viewer: {len(files)} TIFF datafile(s)", flush=True)
    Viewer(root, ids, files, message)
    root.mainloop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
