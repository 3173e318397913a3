// Follow a job's stdout and stderr as they grow (the job page's pre[data-follow]; htmx
// appends to them): keep the newest line in view, until the reader scrolls up to read;
// following resumes when they scroll back to the bottom. Without this file the text is
// still there, and still grows. (And the job page's one other nicety: focus on a preview.)
(function () {
  "use strict";
  var SLACK = 24; // pixels from the bottom that still count as "at the bottom"

  function atBottom(el) {
    return el.scrollHeight - el.scrollTop - el.clientHeight <= SLACK;
  }

  function say(el, following) {
    el.dataset.following = following ? "true" : "false";
    var state = document.querySelector('.follow-state[data-for="' + el.id + '"]');
    if (state && el.dataset.complete !== "true") {
      state.textContent = following ? "following the end" : "paused: scroll to the bottom to follow";
    }
  }

  function follow(el) {
    say(el, true);
    el.scrollTop = el.scrollHeight;
    el.addEventListener("scroll", function () {
      say(el, atBottom(el));
    });
    new MutationObserver(function (records, observer) {
      if (el.dataset.following === "true") {
        el.scrollTop = el.scrollHeight;
      }
      if (!el.querySelector("span.tail")) { // the job has ended and all of it is here
        observer.disconnect();
        el.dataset.complete = "true";
        var state = document.querySelector('.follow-state[data-for="' + el.id + '"]');
        if (state) {
          state.textContent = "complete";
        }
      }
    }).observe(el, { childList: true, subtree: true, characterData: true });
  }

  function start() {
    var els = document.querySelectorAll("pre[data-follow]");
    for (var i = 0; i < els.length; i++) {
      follow(els[i]);
    }
  }

  // a preview opened in the page: the keyboard's focus goes to its heading, where it is
  document.addEventListener("htmx:afterSwap", function (e) {
    var target = e.detail && e.detail.target;
    if (target && target.id === "output-preview") {
      var heading = target.querySelector("h3");
      if (heading) {
        heading.focus();
      }
    }
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
