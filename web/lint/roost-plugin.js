// The console's own lint rules (an ESLint-compatible plugin, run by oxlint: see
// .oxlintrc.json). Each rule catches a class of bug that once reached users.

const EFFECT_HOOKS = new Set(["useEffect", "useLayoutEffect", "useInsertionEffect"]);

function hookName(callee) {
  if (callee.type === "Identifier") return callee.name;
  if (callee.type === "MemberExpression" && !callee.computed && callee.property.type === "Identifier") return callee.property.name;
  return null;
}

const isFunction = (node) => node.type === "ArrowFunctionExpression" || node.type === "FunctionExpression";

/**
 * An effect callback returns nothing or a cleanup function, never a value by accident.
 * React keeps whatever an effect returns and calls it as the cleanup: `useEffect(() =>
 * window.scrollTo(0, 0), [x])` returned a Promise in Chromium 156, React called it on
 * the next render and the whole console unmounted ("l is not a function"). So: no
 * expression-bodied effect callbacks (unless the expression is the cleanup function
 * itself), and no async ones (they return a Promise).
 */
const effectReturnsNothing = {
  meta: {
    type: "problem",
    docs: { description: "Effect callbacks must not return a value by accident" },
    schema: [],
  },
  create(context) {
    return {
      CallExpression(node) {
        if (!EFFECT_HOOKS.has(hookName(node.callee))) return;
        const cb = node.arguments[0];
        if (!cb || !isFunction(cb)) return;
        if (cb.async) {
          context.report({
            node: cb,
            message: "An async effect callback returns a Promise, which React would call as the cleanup: start an async function inside the effect instead.",
          });
        } else if (cb.body.type !== "BlockStatement" && !isFunction(cb.body)) {
          context.report({
            node: cb.body,
            message: "An expression-bodied effect callback returns the expression's value, which React calls as the cleanup: use a block body `() => { ... }`.",
          });
        }
      },
    };
  },
};

export default {
  meta: { name: "roost" },
  rules: { "effect-returns-nothing": effectReturnsNothing },
};
