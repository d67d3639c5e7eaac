"""End to end in headless Chromium: open the page, upload a synthetic video, read the top-5 shown.

Needs Debian's chromium and chromium-driver (``.ci/run`` installs them) and selenium (test extra);
skips with the reason when any is missing.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time

import pytest

pytest.importorskip("fastapi", reason="the web demo needs the 'serve' extra")
uvicorn = pytest.importorskip("uvicorn", reason="the web demo needs the 'serve' extra")
webdriver = pytest.importorskip("selenium.webdriver", reason="the browser test needs selenium (test extra)")

from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from dualstream.inference.runtime import load_predictor
from dualstream.serve import create_app  # noqa: E402
from dualstream.inference.timeline import predict_timeline  # noqa: E402

from .test_predict import package  # noqa: E402, F401  (package: the fixture)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="no headless browser: install Debian's chromium and chromium-driver (.ci/run does)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server_url(package):
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(package, clips=2), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the demo server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    yield driver
    driver.quit()


def test_upload_shows_the_top5_and_the_explanation(browser, server_url, package, tiny_dataset, tmp_path):
    video = tiny_dataset / "videos" / "Grow" / "v_Grow_g01_c01.avi"
    expected = load_predictor(package).predict(video, clips=2).top(5)
    browser.get(server_url)
    assert browser.title == "dualstream: action recognition"
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "model").text.startswith("Model early_fusion_small"))
    browser.find_element(By.ID, "video").send_keys(str(video))
    browser.find_element(By.ID, "submit").click()
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#results .row"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#results .row")
    shown = [(r.find_element(By.CLASS_NAME, "label").text, r.find_element(By.CLASS_NAME, "prob").text) for r in rows]
    assert shown == [(c, f"{p:.3f}") for c, p in expected]
    widths = [r.find_element(By.CLASS_NAME, "bar").get_attribute("style") for r in rows]
    assert widths[0] == f"width: {100 * expected[0][1]:.1f}%;"
    WebDriverWait(browser, 30).until(
        lambda d: d.execute_script("const i = document.getElementById('explanation');"
                                   "return i.complete && i.naturalWidth > 0 && i.style.display === 'block';"))
    assert browser.find_element(By.ID, "error").text == ""

    # the timeline of the same video: one coloured band per segment, in order, and the confidence line
    timeline = predict_timeline(load_predictor(package), video).to_dict(5)
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "timeline-section").is_displayed())
    bands = browser.find_elements(By.CSS_SELECTOR, "#timeline .segment")
    assert [b.get_attribute("data-class") for b in bands] == [s["class"] for s in timeline["segments"]]
    first = timeline["segments"][0]
    assert bands[0].get_attribute("title").startswith(f"{first['class']}: {first['start']:.2f}-{first['end']:.2f} s")
    colour = browser.execute_script("return getComputedStyle(arguments[0]).backgroundColor;", bands[0])
    hex_colour = timeline["colours"][first["class"]]
    assert colour == "rgb({}, {}, {})".format(*(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)))
    widths = [b.size["width"] for b in bands]
    track = browser.find_element(By.ID, "timeline").size["width"]
    assert sum(widths) == pytest.approx(track * (timeline["windows"][-1]["end"] - timeline["windows"][0]["start"])
                                        / timeline["duration"], abs=len(bands) + 1)
    points = browser.find_element(By.ID, "confidence-line").get_attribute("points").split()
    assert len(points) == 2 * len(timeline["windows"])
    legend = browser.find_element(By.ID, "legend").text.split("\n")
    assert legend == list(dict.fromkeys(s["class"] for s in timeline["segments"]))

    # a bad file shows the server's message, and the page keeps working
    junk = tmp_path / "notes.txt"
    junk.write_text("not a video")
    browser.find_element(By.ID, "video").send_keys(str(junk))
    browser.find_element(By.ID, "submit").click()
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "error").text)
    assert browser.find_element(By.ID, "error").text.startswith("notes.txt: not a video file")
    assert browser.find_elements(By.CSS_SELECTOR, "#results .row") == []
    assert not browser.find_element(By.ID, "timeline-section").is_displayed()
