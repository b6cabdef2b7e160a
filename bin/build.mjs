#!/usr/bin/env node
// `npm run build`: builds rosterd's bundle now (bin/bundle.mjs), e.g. in an image or before
// a systemd service whose install directory is read-only.
import { buildBundle, BUNDLE } from "./bundle.mjs"

await buildBundle()
console.log(`built ${BUNDLE}`)
