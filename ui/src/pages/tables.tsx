import { Empty } from "../components/States";
import { useProjectCrumbs } from "./project";

export default function Tables() {
  useProjectCrumbs("Tables");
  return (
    <div class="panel">
      <Empty title="Table browser: not available yet">It reads tables through the SQL endpoint of the server, which is being built.</Empty>
    </div>
  );
}
