// Loaded between require.js and embed-amd.js (nb_ipywidgets_js in _config.yml).
// The widget bundles are named AMD modules; their CSS asks for icon fonts next to the
// module's URL, which RequireJS would otherwise place next to the page. Map the modules
// to this folder, where tools/book.py puts the fonts, so the site needs no network.
(function () {
  var here = document.currentScript.src.replace(/[^/]*$/, "");
  window.require.config({ paths: { "@jupyter-widgets": here + "@jupyter-widgets" } });
})();
