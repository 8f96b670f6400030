// uPlot builds its number format from navigator.language when it loads; a browser started
// under a POSIX locale reports a tag Intl refuses ("en-US@posix") and the page would die.
// Imported first, so it runs before uPlot's module code.
try {
  new Intl.NumberFormat(navigator.language);
} catch {
  Object.defineProperty(navigator, "language", { value: "en-US", configurable: true });
}
export {};
