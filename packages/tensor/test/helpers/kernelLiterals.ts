import ts from 'typescript'

/**
 * Where `source` spells a kernel name as a string literal in an expression: `runOp1('sum', 'Sum', …)` instead of
 * `Kernel.Sum`. Type positions (`GradientTable['Sum']`) are not call sites and are skipped; comments never count,
 * since this reads the syntax tree.
 */
export function kernelNameLiterals(fileName: string, source: string, names: ReadonlySet<string>): { readonly line: number; readonly name: string }[] {
  const sf = ts.createSourceFile(fileName, source, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS)
  const found: { line: number; name: string }[] = []
  const visit = (node: ts.Node, inType: boolean): void => {
    const typeHere = inType || ts.isTypeNode(node)
    if ((ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) && !typeHere && names.has(node.text))
      found.push({ line: sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1, name: node.text })
    // import/export specifiers are module names, not kernel names
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) return
    ts.forEachChild(node, child => visit(child, typeHere))
  }
  visit(sf, false)
  return found
}
