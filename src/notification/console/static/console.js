// The console's own behaviour, on every page and every fragment htmx brings in:
// the browser's time zone sent with the sign-in form, and a live character count under a text.
(function () {
  "use strict";

  function characters(text) {
    // Code points, as the server counts them (an emoji is one character, not two).
    return Array.from(text).length;
  }

  function setUp(root) {
    root.querySelectorAll("input[data-browser-timezone]").forEach(function (input) {
      try {
        input.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
      } catch (error) {
        input.value = "";
      }
    });
    root.querySelectorAll("textarea[data-count]").forEach(function (area) {
      var output = document.getElementById(area.getAttribute("data-count"));
      var limit = parseInt(area.getAttribute("data-limit"), 10);
      if (!output) {
        return;
      }
      function update() {
        var used = characters(area.value.replace(/\r\n/g, "\n"));
        output.textContent = used.toLocaleString("en") + " / " + limit.toLocaleString("en") + " characters";
        output.classList.toggle("error", used > limit);
      }
      area.addEventListener("input", update);
      update();
    });
  }

  htmx.onLoad(setUp);
})();
