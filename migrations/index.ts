import { Migrator } from "@effect/sql"
import roster from "./0001_roster.ts"

/**
 * A static index of the migrations, loaded with `Migrator.fromRecord`: it works the same
 * under tsx, node and vitest (a file-system loader would `import()` `.ts` files from inside
 * @effect/sql, which vitest cannot follow). Add each new migration here.
 */
export const migrations = Migrator.fromRecord({
  "0001_roster": roster
})
