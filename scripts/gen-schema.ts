// Writes schemas/wattbench.schema.json from src/core/config/schema.ts (the one source of truth).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { schemaFileText } from '../src/core/config/schema-file';

const target = join(__dirname, '..', 'schemas', 'wattbench.schema.json');
writeFileSync(target, schemaFileText());
console.log(`wrote ${target}`);
