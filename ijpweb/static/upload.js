// Upload with a progress bar (the dataset page's #upload-form). Without this script the
// form is a plain multipart POST and the page comes back with the files listed.
(function () {
  "use strict";

  function setup() {
    var form = document.getElementById("upload-form");
    if (!form || !window.XMLHttpRequest || !window.FormData) return;
    var input = document.getElementById("upload-file");
    var bar = document.getElementById("upload-progress");
    var status = document.getElementById("upload-status");
    var error = document.getElementById("upload-file-error");

    function showError(message) {
      error.textContent = message;
      error.hidden = false;
      input.setAttribute("aria-invalid", "true");
      var described = input.getAttribute("aria-describedby") || "";
      if (described.indexOf("upload-file-error") < 0) {
        input.setAttribute("aria-describedby", (described + " upload-file-error").trim());
      }
      status.textContent = "";
      input.focus();
    }

    function clearError() {
      error.textContent = "";
      error.hidden = true;
      input.removeAttribute("aria-invalid");
    }

    function refreshList() {
      // the dataset's datafile list again (the same fragment htmx pages with)
      var section = document.querySelector("section.detail");
      var req = new XMLHttpRequest();
      req.open("GET", form.getAttribute("data-refresh"));
      req.setRequestHeader("HX-Request", "true");
      req.onload = function () {
        if (req.status !== 200 || !section) return;
        var holder = document.createElement("div");
        holder.innerHTML = req.responseText;
        var fresh = holder.querySelector("section.detail");
        if (!fresh) return;
        section.replaceWith(fresh);
        if (window.htmx) window.htmx.process(fresh);
      };
      req.send();
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (!input.files || input.files.length === 0) {
        showError("Choose at least one file to upload.");
        return;
      }
      clearError();
      var button = form.querySelector("button[type=submit]");
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("Accept", "application/json");
      bar.hidden = false;
      bar.value = 0;
      bar.textContent = "0%";
      status.textContent = "Uploading…";
      button.disabled = true;
      xhr.upload.addEventListener("progress", function (e) {
        if (e.lengthComputable) {
          var percent = Math.floor((e.loaded / e.total) * 100);
          bar.value = percent;
          bar.textContent = percent + "%";
        }
      });
      xhr.addEventListener("load", function () {
        button.disabled = false;
        var body = null;
        try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
        if (xhr.status === 201 && body) {
          bar.value = 100;
          bar.textContent = "100%";
          var n = body.datafiles.length;
          status.textContent = "Uploaded " + n + " file" + (n === 1 ? "" : "s") + ": " +
            body.datafiles.map(function (f) { return f.name; }).join(", ") + ".";
          form.reset();
          refreshList();
        } else {
          bar.hidden = true;
          showError(body && body.message ? body.message : "The upload failed (" + xhr.status + "); nothing was stored.");
        }
      });
      xhr.addEventListener("error", function () {
        button.disabled = false;
        bar.hidden = true;
        showError("The upload could not be sent (the connection failed); nothing was stored.");
      });
      xhr.send(new FormData(form));
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setup);
  } else {
    setup();
  }
})();
