// ANSI colours to HTML, written for this page (no library): SGR colours and styles; other escapes dropped.
(function () {
  "use strict";
  var BASE = ["#000", "#c33", "#3a3", "#cc3", "#36c", "#c3c", "#3cc", "#ccc",
              "#666", "#f55", "#5f5", "#ff5", "#58f", "#f5f", "#5ff", "#fff"];
  function c256(n) {
    if (n < 16) return BASE[n];
    if (n >= 232) { var g = 8 + (n - 232) * 10; return "rgb(" + g + "," + g + "," + g + ")"; }
    n -= 16; var s = [0, 95, 135, 175, 215, 255];
    return "rgb(" + s[Math.floor(n / 36)] + "," + s[Math.floor(n / 6) % 6] + "," + s[n % 6] + ")";
  }
  // One converter per terminal: it keeps the style (and a cut escape) from one chunk to the next.
  function Ansi() { this.st = {}; this.rest = ""; }
  Ansi.prototype.sgr = function (codes) {
    var st = this.st;
    for (var i = 0; i < codes.length; i++) {
      var c = codes[i];
      if (c === 0) { st = {}; }
      else if (c === 1) st.b = 1; else if (c === 2) st.d = 1; else if (c === 3) st.i = 1; else if (c === 4) st.u = 1;
      else if (c === 22) { delete st.b; delete st.d; } else if (c === 23) delete st.i; else if (c === 24) delete st.u;
      else if (c >= 30 && c <= 37) st.fg = BASE[c - 30]; else if (c >= 90 && c <= 97) st.fg = BASE[c - 82];
      else if (c >= 40 && c <= 47) st.bg = BASE[c - 40]; else if (c >= 100 && c <= 107) st.bg = BASE[c - 92];
      else if (c === 39) delete st.fg; else if (c === 49) delete st.bg;
      else if ((c === 38 || c === 48) && codes[i + 1] === 5) { st[c === 38 ? "fg" : "bg"] = c256(codes[i + 2] | 0); i += 2; }
      else if ((c === 38 || c === 48) && codes[i + 1] === 2) {
        st[c === 38 ? "fg" : "bg"] = "rgb(" + (codes[i + 2] | 0) + "," + (codes[i + 3] | 0) + "," + (codes[i + 4] | 0) + ")"; i += 4;
      }
    }
    this.st = st;
  };
  Ansi.prototype.style = function () {
    var st = this.st, css = "";
    if (st.fg) css += "color:" + st.fg + ";"; if (st.bg) css += "background:" + st.bg + ";";
    if (st.b) css += "font-weight:bold;"; if (st.d) css += "opacity:.7;"; if (st.i) css += "font-style:italic;";
    if (st.u) css += "text-decoration:underline;";
    return css;
  };
  // Append ``text`` to ``el`` as text nodes and styled spans (never innerHTML: the text is the agent's).
  Ansi.prototype.append = function (el, text) {
    text = this.rest + text; this.rest = "";
    var re = /\x1b(?:\[([0-9;?]*)([A-Za-z])|\][^\x07\x1b]*(?:\x07|\x1b\\)|[()][A-Za-z0-9]|[=>78DEHMc])/g, at = 0, m;
    var cut = text.lastIndexOf("\x1b");
    if (cut >= 0 && cut > text.length - 32 && !/\x1b(?:\[[0-9;?]*[A-Za-z]|\][^\x07]*\x07|[()][A-Za-z0-9]|[=>78DEHMc])/.test(text.slice(cut))) {
      this.rest = text.slice(cut); text = text.slice(0, cut);
    }
    var self = this;
    function put(s) {
      s = s.replace(/\r\n/g, "\n").replace(/\r/g, "").replace(/[\x00-\x08\x0b-\x1f\x7f]/g, "");
      if (!s) return;
      var css = self.style();
      if (!css) { el.appendChild(document.createTextNode(s)); return; }
      var span = document.createElement("span"); span.style.cssText = css; span.textContent = s; el.appendChild(span);
    }
    while ((m = re.exec(text)) !== null) {
      put(text.slice(at, m.index)); at = re.lastIndex;
      if (m[2] === "m") this.sgr((m[1] || "0").split(";").map(function (x) { return x === "" ? 0 : parseInt(x, 10); }));
    }
    put(text.slice(at));
  };
  window.Ansi = Ansi;
})();
