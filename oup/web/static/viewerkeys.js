// /viewer by keyboard: the 3D view takes the focus (Tab); the arrow keys move it over
// the ground (as it is turned), + and - zoom, Enter shows the attributes of what is in
// the middle, as a click there would (viewer.js's click handler).
(function () {
  "use strict";
  const EARTH = 6378137;  // metres: the steps are a tenth of the height, not exact
  let tries = 0;
  const wait = setInterval(() => {  // viewer.js makes the viewer first
    const viewer = window.oup && window.oup.viewer;
    if (!viewer && ++tries < 600) return;
    clearInterval(wait);
    if (!viewer) return;
    const canvas = viewer.scene.canvas;
    canvas.tabIndex = 0;
    canvas.setAttribute("aria-label",
                        oupT("3D view: arrow keys move it, + and - zoom, Enter shows what is in the middle"));
    const click = () => {  // a click in the middle, through Cesium's own pointer handling
      const r = canvas.getBoundingClientRect();
      const at = { clientX: r.left + r.width / 2, clientY: r.top + r.height / 2, button: 0,
                   pointerId: 1, pointerType: "mouse", isPrimary: true, bubbles: true };
      canvas.dispatchEvent(new PointerEvent("pointerdown", at));
      canvas.dispatchEvent(new PointerEvent("pointerup", at));
    };
    canvas.addEventListener("keydown", (e) => {
      const camera = viewer.camera, c = camera.positionCartographic;
      const step = Math.max(c.height, 50) * 0.1;
      const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, step],
                      ArrowDown: [0, -step] };
      if (e.key === "+" || e.key === "=") camera.zoomIn(c.height * 0.2);
      else if (e.key === "-" || e.key === "_") camera.zoomOut(c.height * 0.25);
      else if (e.key === "Enter") click();
      else if (moves[e.key]) {
        const [right, ahead] = moves[e.key], h = camera.heading;
        const east = right * Math.cos(h) + ahead * Math.sin(h);
        const north = -right * Math.sin(h) + ahead * Math.cos(h);
        camera.setView({
          destination: Cesium.Cartesian3.fromRadians(
            c.longitude + east / (EARTH * Math.cos(c.latitude)), c.latitude + north / EARTH,
            c.height),
          orientation: { heading: camera.heading, pitch: camera.pitch, roll: camera.roll } });
      } else return;
      e.preventDefault();
    });
  }, 100);
})();
