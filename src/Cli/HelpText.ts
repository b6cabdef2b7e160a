/**
 * What help adds to the command tree (src/Cli/HelpTree.ts reads the rest from the commands
 * themselves): the groups of `rosterd --help`, and examples. A new command lands in a group
 * with one line in GROUPS; test/Cli/Help.test.ts fails while a top-level command has none.
 */

export interface HelpGroup {
  /** `rosterd <key> --help`. */
  readonly key: string
  readonly title: string
  readonly about: string
  /**
   * Command paths, top-level names or deeper ones (`runs undo`): a command belongs to the
   * group listing the longest prefix of its path.
   */
  readonly commands: ReadonlyArray<string>
}

export const GROUPS: ReadonlyArray<HelpGroup> = [
  { key: "syncing", title: "Syncing", about: "run syncs and see what they did", commands: ["daemon", "sync", "status", "runs", "report"] },
  { key: "districts", title: "Districts", about: "register districts, their rules, credentials and data", commands: ["district", "districts"] },
  { key: "people", title: "People and accounts", about: "the platform's accounts, linking, activation, classes", commands: ["accounts", "class", "user"] },
  { key: "admins", title: "Administrators", about: "district administrators and partnerships", commands: ["admin"] },
  { key: "safety", title: "Safety", about: "held change sets, undoing a run, the audit log", commands: ["holds", "runs undo", "audit"] },
  { key: "schedule", title: "Schedule", about: "holiday calendars and ad-hoc pauses", commands: ["calendar", "pause", "resume", "pauses"] },
  { key: "mail", title: "Mail", about: "the mail queue, notifications and webhooks", commands: ["outbox", "notify"] },
  { key: "operations", title: "Operations", about: "health checks, the database, encryption keys", commands: ["doctor", "migrate", "db", "secrets"] }
]

/**
 * The overview's one-line summary where the command's own description does not shorten
 * well (by default: its description without parentheses, cut to the line).
 */
export const SUMMARIES: Readonly<Record<string, string>> = {
  "runs": "a district's run history, one run, its change list",
  "runs undo": "undo a run: its creations deactivated, its changes reverted",
  "report": "what a district should fix: findings by rule, open reviews",
  "admin": "administrators: invite, list, edit, remove; partnerships",
  "calendar": "the holiday pause windows and ad-hoc pauses of a district",
  "doctor": "check config, database, sources, credentials, mail and clock",
  "accounts resend-activation": "a new activation e-mail for one pending teacher, or all",
  "accounts pending": "teachers and roster admins who have not activated",
  "accounts resolve": "the account a Clever or ClassLink sign-in resolves to"
}

/** One or two examples per command, by path. A command without one shows none. */
export const EXAMPLES: Readonly<Record<string, ReadonlyArray<string>>> = {
  "daemon": ["rosterd daemon"],
  "sync": ["rosterd sync lincoln", "rosterd sync lincoln --full --dry-run --json"],
  "status": ["rosterd status", "rosterd status lincoln --json"],
  "runs": ["rosterd runs lincoln --limit 5", "rosterd runs lincoln --run 1234 --changes"],
  "runs undo": ["rosterd runs undo 1234 --by alice --dry-run", "rosterd runs undo 1234 --by alice --reason \"bad export\""],
  "report": ["rosterd report lincoln"],
  "district": ["rosterd district add lincoln --provider oneroster-csv --path /srv/drops/lincoln"],
  "district add": [
    "rosterd district add lincoln --provider oneroster-csv --path /srv/drops/lincoln --timezone America/Chicago",
    "rosterd district add ridge --provider clever --district-id 5f1a… --token-file /etc/rosterd/ridge.token"
  ],
  "district list": ["rosterd district list"],
  "district show": ["rosterd district show lincoln --json"],
  "district rules": ["rosterd district rules lincoln", "rosterd district rules lincoln --file rules.yaml --by alice"],
  "district remove": ["rosterd district remove lincoln --by alice"],
  "district set-credentials": ["rosterd district set-credentials ridge --token-file /etc/rosterd/ridge.token", "printf %s \"$TOKEN\" | rosterd district set-credentials ridge --token-stdin"],
  "district export": ["rosterd district export lincoln --out lincoln.jsonl"],
  "district erase": ["rosterd district erase lincoln --confirm lincoln --by alice --reason \"contract ended\""],
  "districts": ["rosterd districts discover"],
  "districts discover": ["rosterd districts discover", "rosterd districts discover --json"],
  "district rekey": ["rosterd district rekey lincoln --run 1234 --by alice --dry-run", "rosterd district rekey lincoln --map ids.csv --by alice"],
  "accounts": ["rosterd accounts review list --district lincoln"],
  "accounts import": ["rosterd accounts import accounts.csv"],
  "accounts add-email": ["rosterd accounts add-email 42 tess@lincoln.k12.example"],
  "accounts review": ["rosterd accounts review list"],
  "accounts review list": ["rosterd accounts review list --district lincoln --json"],
  "accounts review link": ["rosterd accounts review link 17 --account 42 --by alice"],
  "accounts review create": ["rosterd accounts review create 17 --by alice"],
  "accounts confirm": ["printf %s \"$TOKEN\" | rosterd accounts confirm --token-stdin"],
  "accounts resend-activation": ["rosterd accounts resend-activation lincoln --user t-1001", "rosterd accounts resend-activation lincoln --all-pending"],
  "accounts show": ["rosterd accounts show 42"],
  "accounts pending": ["rosterd accounts pending lincoln"],
  "accounts merge": ["rosterd accounts merge 57 42 --by alice --reason \"same teacher\""],
  "accounts duplicates": ["rosterd accounts duplicates --district lincoln"],
  "accounts resolve": ["rosterd accounts resolve --provider clever --subject 5f1a…"],
  "admin": ["rosterd admin list lincoln"],
  "admin invite": ["rosterd admin invite lincoln --name \"Pat Lee\" --email pat@lincoln.k12.example --all-schools --permission view"],
  "admin list": ["rosterd admin list lincoln --stale"],
  "admin edit": ["rosterd admin edit 7 --permission manage --by alice"],
  "admin resend": ["rosterd admin resend 7"],
  "admin remove": ["rosterd admin remove 7 --reason \"left the district\" --by alice"],
  "admin confirm": ["printf %s \"$TOKEN\" | rosterd admin confirm --token-stdin"],
  "admin partnership": ["rosterd admin partnership list"],
  "admin partnership add": ["rosterd admin partnership add north-coast --name \"North Coast Partnership\""],
  "admin partnership add-district": ["rosterd admin partnership add-district north-coast lincoln --region valley"],
  "admin partnership list": ["rosterd admin partnership list --json"],
  "class": ["rosterd class create --owner 42 --title \"Chess club\""],
  "class create": ["rosterd class create --owner 42 --title \"Chess club\""],
  "class rename": ["rosterd class rename 310 \"Chess club (spring)\""],
  "class add-student": ["rosterd class add-student 310 --account 57"],
  "class remove-student": ["rosterd class remove-student 310 --account 57"],
  "class remove-teacher": ["rosterd class remove-teacher 310 88"],
  "class attach-integration": ["rosterd class attach-integration 310 quizzes"],
  "class delete": ["rosterd class delete 310"],
  "user": ["rosterd user rename 88 --given-name Pat"],
  "user rename": ["rosterd user rename 88 --given-name Pat --family-name Lee"],
  "holds": ["rosterd holds list", "rosterd holds show 1234"],
  "holds list": ["rosterd holds list --district lincoln --all"],
  "holds show": ["rosterd holds show 1234 --json"],
  "holds approve": ["rosterd holds approve 1234 --by alice --reason \"leavers confirmed\""],
  "holds reject": ["rosterd holds reject 1234 --by alice --reason \"half the export missing\""],
  "audit": ["rosterd audit --district lincoln --limit 20"],
  "calendar": ["rosterd calendar lincoln --year 2026"],
  "pause": ["rosterd pause lincoln --until 2026-12-31 --reason \"winter break\"", "rosterd pause --all --from 2026-12-24 --until 2026-12-26"],
  "resume": ["rosterd resume lincoln", "rosterd resume --all --by alice"],
  "pauses": ["rosterd pauses", "rosterd pauses lincoln --all-history"],
  "outbox": ["rosterd outbox list --state failed"],
  "outbox list": ["rosterd outbox list --state failed --limit 20"],
  "outbox retry": ["rosterd outbox retry 981 --by alice"],
  "notify": ["rosterd notify test", "rosterd notify list"],
  "notify test": ["rosterd notify test --event run.failed"],
  "notify list": ["rosterd notify list --limit 20 --json"],
  "secrets": ["rosterd secrets status"],
  "secrets rotate-key": ["rosterd secrets rotate-key --by alice"],
  "secrets status": ["rosterd secrets status --json"],
  "doctor": ["rosterd doctor", "rosterd doctor --json"],
  "migrate": ["DATABASE_OWNER_URL=postgres://owner@db/rosterd rosterd migrate"],
  "db": ["rosterd db grants --format markdown"],
  "db setup-roles": ["DATABASE_ADMIN_URL=postgres://postgres@db/rosterd rosterd db setup-roles"],
  "db grants": ["rosterd db grants", "rosterd db grants --format sql"]
}
