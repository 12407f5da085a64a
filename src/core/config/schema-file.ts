import { jsonSchemaDocument } from './schema';

/** The exact text of schemas/wattbench.schema.json; a test checks the committed file equals it. */
export function schemaFileText(): string {
  return `${JSON.stringify(jsonSchemaDocument(), null, 2)}\n`;
}
