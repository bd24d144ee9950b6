// Loaded after require.js and before embed-amd.js. The vendored widget manager
// (@jupyter-widgets/html-manager) loads its fonts from the folder of the AMD module that
// declares them: "@jupyter-widgets/html-manager" and ".../html-manager/dist/libembed-amd".
// require.js would place those modules under the page's own folder (book/@jupyter-widgets/...);
// map both module names into this folder (_static/widgets/), where the fonts are.
(function () {
  var here = new URL("./", document.currentScript.src).href.replace(/\/$/, "");
  require.config({paths: {
    "@jupyter-widgets": here,
    "@jupyter-widgets/html-manager/dist": here
  }});
  window.__jupyter_widgets_assets_path__ = here + "/";
})();
