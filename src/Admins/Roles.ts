/**
 * Which rostered roles are administrators (seed 003): OneRoster's `administrator`, and
 * Clever's `district_admin` and `staff` (Clever calls the same user type "School Admins"
 * to applications and "Staff" to districts). Their scope is the orgs they are attached to.
 * The view `roster_admins` (migrations/0004) uses the same list.
 */
export const ADMIN_ROLES = ["administrator", "district_admin", "staff"] as const

const literal = (roles: ReadonlyArray<string>) => `ARRAY[${roles.map((role) => `'${role}'`).join(", ")}]`

/** The admin roles as a SQL array literal, for `u.roles && …`. */
export const ADMIN_ROLES_SQL = literal(ADMIN_ROLES)

/**
 * Roles whose account is pending until its holder confirms the activation e-mail (and is
 * active at once when linked to an account already in use): teachers, and roster admins
 * when the district syncs them.
 */
export const CONFIRMING_ROLES_SQL = literal(["teacher", ...ADMIN_ROLES])

export const isAdminRole = (role: string) => (ADMIN_ROLES as ReadonlyArray<string>).includes(role)
