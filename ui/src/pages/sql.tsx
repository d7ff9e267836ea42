import { Empty } from "../components/States";
import { useProjectCrumbs } from "./project";

export default function Sql() {
  useProjectCrumbs("SQL editor");
  return (
    <div class="panel">
      <Empty title="SQL editor: not available yet">The SQL endpoint of the server is being built; the editor arrives with it.</Empty>
    </div>
  );
}
