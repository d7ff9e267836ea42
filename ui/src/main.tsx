import { render } from "solid-js/web";
import { App } from "./app";
import "./theme";
import "./styles.css";

render(() => <App />, document.getElementById("root")!);
