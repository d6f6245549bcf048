/*
 * fsnlab phase explorer: the animation, drawn in the browser.
 *
 * Every frame is built here from two stores the server filled once per change of a control:
 *   anim       phases theta[stage][pos] of the chosen window and coordinate, labels, character
 *              classes, the attention layer of each stage, the base layout (fsnlab.viz.phases);
 *   selection  the selected token's top-k couplings per layer ([u, A_tu]) and its order
 *              parameters Z0 (attended tokens) and Z1 (their successors) per layer.
 * The scrubber ("frame") is a fractional stage index; between two stages each token moves along
 * the shorter arc.
 *
 * Two paths draw the figure, neither calls the server:
 *   - scrubbing or changing a control: the clientside callback `render` returns the figure to the
 *     dcc.Graph (the Dash way);
 *   - playing: a requestAnimationFrame loop (`loop`) advances the frame by speed x elapsed time and
 *     calls Plotly.react on the graph directly, so no Dash callback runs per frame; the scrubber is
 *     moved (set_props) a few times a second, and on pause the Dash figure is brought up to date.
 *
 * `build` mirrors fsnlab.viz.phases.phase_circle_figure (the server-side, static version).
 */
(function () {
  "use strict";
  var TWO_PI = 2 * Math.PI;

  function wrap(a) {
    return ((((a + Math.PI) % TWO_PI) + TWO_PI) % TWO_PI) - Math.PI;
  }

  function phasesAt(anim, f) {
    var S = anim.theta.length;
    f = Math.max(0, Math.min(S - 1, f || 0));
    var i0 = Math.floor(f + 1e-9);
    var a = f - i0;
    var th0 = anim.theta[i0];
    if (a < 1e-6 || i0 + 1 >= S) return th0.slice();
    var th1 = anim.theta[i0 + 1];
    var out = new Array(th0.length);
    for (var t = 0; t < th0.length; t++) out[t] = th0[t] + a * wrap(th1[t] - th0[t]);
    return out;
  }

  function radii(T, mode) {
    var r = new Array(T);
    for (var t = 0; t < T; t++) r[t] = mode === "position" && T > 1 ? 0.3 + (0.7 * t) / (T - 1) : 1.0;
    return r;
  }

  function messageFigure(text) {
    return {
      data: [],
      layout: {
        template: "plotly_white", height: 520, xaxis: {visible: false}, yaxis: {visible: false},
        annotations: [{text: text, showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5}],
      },
    };
  }

  function build(frame, anim, sel, trail, colorBy, radiusMode, show) {
    if (anim.error) return messageFigure(anim.error);
    show = show || [];
    var S = anim.theta.length;
    var f = Math.max(0, Math.min(S - 1, frame || 0));
    var th = phasesAt(anim, f);
    var T = th.length;
    var r = radii(T, radiusMode);
    var x = new Array(T), y = new Array(T), pos = new Array(T), hover = new Array(T);
    for (var t = 0; t < T; t++) {
      x[t] = r[t] * Math.cos(th[t]);
      y[t] = r[t] * Math.sin(th[t]);
      pos[t] = t;
      hover[t] = "t=" + t + " '" + anim.labels[t] + "'<br>θ=" + wrap(th[t]).toFixed(3);
    }
    var scatterType = anim.webgl ? "scattergl" : "scatter";
    var data = [];
    var cx = [], cy = [];
    for (var j = 0; j <= 180; j++) {
      cx.push(Math.cos(-Math.PI + (TWO_PI * j) / 180));
      cy.push(Math.sin(-Math.PI + (TWO_PI * j) / 180));
    }
    data.push({type: "scatter", x: cx, y: cy, mode: "lines", line: {color: "#cccccc", width: 1}, hoverinfo: "skip", showlegend: false});

    // trail: earlier positions every quarter stage, fading out
    var steps = Math.round((trail || 0) * 4);
    if (steps > 0) {
      var tx = [], ty = [], tc = [];
      for (var s = steps; s >= 1; s--) {
        var fb = f - s * 0.25;
        if (fb < 0) continue;
        var old = phasesAt(anim, fb);
        var alpha = (0.05 + (0.3 * (steps - s + 1)) / (steps + 1)).toFixed(3);
        for (var t2 = 0; t2 < T; t2++) {
          tx.push(r[t2] * Math.cos(old[t2]));
          ty.push(r[t2] * Math.sin(old[t2]));
          tc.push("rgba(120,120,120," + alpha + ")");
        }
      }
      data.push({type: scatterType, x: tx, y: ty, mode: "markers", marker: {size: 4, color: tc}, hoverinfo: "skip", showlegend: false});
    }

    if (colorBy === "class") {
      var order = anim.class_order;
      for (var c = 0; c < order.length; c++) {
        var cls = order[c], ix = [], iy = [], ip = [], ih = [];
        for (var t3 = 0; t3 < T; t3++) {
          if (anim.classes[t3] !== cls) continue;
          ix.push(x[t3]); iy.push(y[t3]); ip.push(t3); ih.push(hover[t3]);
        }
        if (!ip.length) continue;
        data.push({type: scatterType, x: ix, y: iy, mode: "markers", name: cls, customdata: ip, hovertext: ih,
                   hoverinfo: "text", marker: {size: 7, color: anim.class_colors[cls]}});
      }
    } else {
      data.push({type: scatterType, x: x, y: y, mode: "markers", name: "tokens", customdata: pos, hovertext: hover,
                 hoverinfo: "text", marker: {size: 7, color: pos, colorscale: "Viridis", showscale: true,
                 colorbar: {title: {text: "position"}, thickness: 12}}});
    }

    var i0 = Math.min(S - 1, Math.floor(f + 1e-9));
    var layer = anim.layer_of_stage[i0];
    var title = "phases · sample " + anim.sample + " · osc " + anim.osc + " · " + anim.stages[i0];
    if (i0 + 1 < S && f - i0 > 1e-6) title += " → " + anim.stages[i0 + 1];
    if (sel && sel.pos !== undefined && sel.pos < T) {
      var tt = sel.pos;
      if (layer !== null && layer !== undefined) {
        title += " · couplings of layer " + layer;
        var att = (sel.attended || {})[String(layer)] || [];
        if (show.indexOf("edges") >= 0) {
          for (var k = 0; k < att.length; k++) {
            var u = att[k][0], w = att[k][1];
            if (u < 0 || u >= T) continue;
            data.push({type: "scatter", x: [x[tt], x[u]], y: [y[tt], y[u]], mode: "lines", showlegend: false,
                       hoverinfo: "text", hovertext: "A[" + tt + "," + u + "] = " + w.toFixed(3),
                       line: {color: "#D55E00", width: 1 + 6 * w}});
            if (u < tt && u + 1 < T) {
              data.push({type: "scatter", x: [x[u], x[u + 1]], y: [y[u], y[u + 1]], mode: "lines+markers", showlegend: false,
                         hoverinfo: "text", hovertext: "successor " + u + "→" + (u + 1),
                         line: {color: "#009E73", width: 1.5, dash: "dash"},
                         marker: {symbol: "arrow", size: [0, 11], angleref: "previous", color: "#009E73"}});
            }
          }
        }
        var z = (sel.z || {})[String(layer)];
        if (z && show.indexOf("fields") >= 0) {
          for (var d = 0; d < z.length; d++) {
            var zr = z[d][0], zi = z[d][1];
            data.push({type: "scatter", x: [0, zr], y: [0, zi], mode: "lines+markers", name: "Z" + d,
                       line: {width: 2, color: d === 0 ? "#000000" : "#009E73"},
                       marker: {symbol: "arrow", size: [0, 12], angleref: "previous"}, hoverinfo: "text",
                       hovertext: "Z" + d + " (n=1): |Z|=" + Math.hypot(zr, zi).toFixed(3) + ", arg=" + Math.atan2(zi, zr).toFixed(3)});
          }
        }
      }
      data.push({type: "scatter", x: [x[tt]], y: [y[tt]], mode: "markers+text", name: "t=" + tt, text: [anim.labels[tt]],
                 textposition: "top center", hoverinfo: "skip",
                 marker: {size: 16, color: "rgba(0,0,0,0)", line: {width: 3, color: "#000000"}}});
    }
    var layout = JSON.parse(JSON.stringify(anim.layout || {}));
    layout.title = {text: title, x: 0.01, xanchor: "left", font: {size: 14}};
    layout.uirevision = "phases-" + anim.key + "-" + anim.sample + "-" + radiusMode;
    layout.height = 520;
    return {data: data, layout: layout};
  }

  // -- the player ---------------------------------------------------------------------------
  var P = {playing: false, frame: 0, synced: null, args: null, last: 0, lastSync: 0, hold: 0, drawn: null, frames: 0};
  var SYNC_MS = 250; // how often the scrubber follows the animation while playing

  function graphDiv() {
    var host = document.getElementById('{"name":"phases","type":"fsn-graph"}');
    if (!host) return null;
    return host.classList.contains("js-plotly-plot") ? host : host.querySelector(".js-plotly-plot");
  }

  function buildCurrent() {
    var a = P.args;
    return build(P.frame, a.anim, a.sel, a.trail, a.colorBy, a.radius, a.show);
  }

  function syncScrubber(now) {
    P.synced = Math.round(P.frame * 100) / 100;
    P.lastSync = now;
    window.dash_clientside.set_props("frame", {value: P.synced});
  }

  function loop(now) {
    if (!P.playing) return;
    var a = P.args;
    if (a && a.anim && a.anim.theta) {
      var S = a.anim.theta.length;
      var dt = Math.min(0.25, Math.max(0, (now - P.last) / 1000)); // a stalled tab does not jump
      P.last = now;
      var before = P.frame;
      P.frame += (a.speed || 1) * dt;
      if (P.frame >= S - 1) { // hold the last stage for a moment, then loop
        P.hold += dt;
        P.frame = S - 1;
        if (P.hold > 0.6) { P.frame = 0; P.hold = 0; }
      }
      var gd = graphDiv();
      if (gd && window.Plotly && (P.frame !== before || a !== P.drawn)) {
        var fig = buildCurrent();
        window.Plotly.react(gd, fig.data, fig.layout);
        P.drawn = a;
        P.frames += 1;
      }
      if (now - P.lastSync > SYNC_MS) syncScrubber(now);
    } else {
      P.last = now;
    }
    window.requestAnimationFrame(loop);
  }

  // Clientside callback: every input of the figure. Stores them for the player; draws unless playing.
  function render(frame, anim, sel, trail, colorBy, radiusMode, show, speed) {
    P.args = {anim: anim, sel: sel, trail: trail, colorBy: colorBy, radius: radiusMode, show: show, speed: speed};
    var f = Number(frame) || 0;
    if (P.synced === null || Math.abs(f - P.synced) > 1e-6) P.frame = f; // a scrub by the user (not the player's own sync)
    if (!anim) return window.dash_clientside.no_update;
    if (P.playing && !anim.error) return window.dash_clientside.no_update; // the loop draws
    return buildCurrent();
  }

  function togglePlay(n) {
    P.playing = !P.playing;
    if (P.playing) {
      P.last = performance.now();
      window.requestAnimationFrame(loop);
      return "❚❚ pause";
    }
    syncScrubber(performance.now()); // Dash redraws the figure at the stopped frame (and it exports right)
    P.synced = null;
    return "▶ play";
  }

  function highlight(sel) {
    var el = document.getElementById("fsn-selected-style");
    if (!el) {
      el = document.createElement("style");
      el.id = "fsn-selected-style";
      document.head.appendChild(el);
    }
    if (sel && sel.pos !== undefined && sel.pos !== null) {
      var p = Number(sel.pos);
      el.textContent = '#text-panel [data-pos="' + p + '"] { outline: 2px solid #000; background-color: #ffd27f !important; }';
      // keep the selected character visible inside the text box (without scrolling the page)
      var panel = document.getElementById("text-panel");
      var span = panel ? panel.querySelector('[data-pos="' + p + '"]') : null;
      if (panel && span) {
        var top = span.offsetTop; // .text-panel is position: relative
        if (top < panel.scrollTop || top > panel.scrollTop + panel.clientHeight - 20) {
          panel.scrollTop = Math.max(0, top - panel.clientHeight / 2);
        }
      }
    } else {
      el.textContent = "";
    }
    return window.dash_clientside.no_update;
  }

  // Clicking a character in the text selects that token (event delegation: one listener for any length).
  document.addEventListener("click", function (ev) {
    var target = ev.target && ev.target.closest ? ev.target.closest("[data-pos]") : null;
    if (!target || !target.closest("#text-panel")) return;
    var p = parseInt(target.getAttribute("data-pos"), 10);
    if (!isNaN(p) && window.dash_clientside && window.dash_clientside.set_props) {
      window.dash_clientside.set_props("selected-token", {data: p});
    }
  });

  window.dash_clientside = Object.assign({}, window.dash_clientside, {
    fsn: {render: render, togglePlay: togglePlay, highlight: highlight, build: build, player: P},
  });
})();
