// Badges shared by every view: training and publishing state, and the test-model warning.

import { h } from "./dom.js";

export function testModelBadge(spec) {
  if (!spec?.isTestModel) return null;
  return h("span", { class: "badge warn", title: spec.displayName }, "test model — images are not meaningful");
}

export function stateBadge(model) {
  const published = model.publishedState === "published";
  return [
    h("span", { class: `badge state-${model.trainingState}` }, model.trainingState),
    published ? h("span", { class: "badge ok" }, "published") : null,
  ];
}
