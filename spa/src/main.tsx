import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./App";
import { takeResumeAction } from "./resume";
import "./styles.css";

const container = document.getElementById("root");
if (container === null) {
  throw new Error("index.html has no #root element");
}
// Once, before the first render (StrictMode renders twice in development; the address must be read
// and cleaned only once).
const resume = takeResumeAction(window.location, window.history);
createRoot(container).render(
  <StrictMode>
    <App resume={resume} />
  </StrictMode>,
);
