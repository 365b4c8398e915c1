// Badges shared by every view: training and publishing state, and the test-model warning.

import { h } from "./dom.js";

export function testModelBadge(spec) {
  if (!spec?.isTestModel) return null;
  return h("span", { class: "badge warn", title: spec.displayName }, "test model — images are not meaningful");
}

// `percent`, when known, is the running training job's progress.
export function stateBadge(model, percent) {
  const published = model.publishedState === "published";
  const training = model.trainingState === "training" && percent !== undefined;
  return [
    h("span", { class: `badge state-${model.trainingState}` }, training ? `training ${percent} %` : model.trainingState),
    published ? h("span", { class: "badge ok" }, "published") : null,
  ];
}
