// The `.sft` parser: a Chevrotain CstParser with error recovery. build-ast.ts turns its
// concrete syntax tree into the AST of grammar/ast.ts. The grammar, in the terms of
// spec/language.md:
//
//   file     = { header | import | pipeline }
//   header   = "sft" NUMBER
//   import   = "import" STRING
//   pipeline = "pipeline" NAME [ "extends" NAME ] "{" { section } "}"
//   section  = SECTION_KEYWORD [ NAME [ NAME ] ] "{" { entry [ "," ] } "}"
//   entry    = NAME "=" value
//   value    = NUMBER | STRING | NAME [ "{" { entry [ "," ] } "}" ] | list
//   list     = "[" [ value { "," value } [ "," ] ] "]"
//
// `true`/`false` are names in the grammar; build-ast.ts makes them booleans.
import { CstParser, EOF, tokenMatcher, type IToken, type IParserErrorMessageProvider, type TokenType } from "chevrotain";
import { invariant } from "../compiler/diagnostics.ts";
import {
  allTokens,
  Comma,
  describeTokenType,
  Equals,
  Extends,
  Import,
  LBrace,
  LBracket,
  Name,
  NumberLiteral,
  Pipeline,
  RBrace,
  RBracket,
  SectionKeyword,
  Sft,
  StringLiteral,
  TooDeep,
} from "./tokens.ts";

/** How a token reads in a message: "`rank`", or "the end of the file". */
function describeToken(token: IToken): string {
  if (tokenMatcher(token, EOF)) return "the end of the file";
  if (tokenMatcher(token, TooDeep)) return "a value nested too deep";
  const image = token.image.length > 24 ? `${token.image.slice(0, 24)}…` : token.image;
  return `\`${image.replace(/[\r\n]/g, " ")}\``;
}

const valueWords = "a value (number, string, true/false, name, list or typed object)";

// Messages in the terms of the language, keyed on the rule and the token that was expected.
const messages: IParserErrorMessageProvider = {
  buildMismatchTokenMessage({ expected, actual, previous, ruleName }) {
    const found = describeToken(actual);
    switch (`${ruleName}:${expected.name}`) {
      case "entry:Equals":
        return `expected \`=\` after the key \`${previous.image}\`, found ${found}`;
      case "pipeline:Name":
        return `expected the pipeline's name after \`pipeline\`, found ${found}`;
      case "pipeline:LBrace":
        return `expected \`{\` to open the pipeline, found ${found}`;
      case "pipeline:RBrace":
        return `expected a section (model, dataset, method, train, decode) or \`}\`, found ${found}`;
      case "extendsClause:Name":
        return `expected the name of the base pipeline after \`extends\`, found ${found}`;
      case "section:LBrace":
        if (tokenMatcher(actual, Equals)) {
          return `expected \`{\` after \`${previous.image}\`: settings go inside a section, like \`model chatglm2 { path = "..." }\``;
        }
        return `expected \`{\` to open the section, found ${found}`;
      case "section:RBrace":
      case "object:RBrace":
        return `expected a \`key = value\` entry or \`}\`, found ${found}`;
      case "list:RBracket":
        return `expected \`,\` or \`]\` in the list, found ${found}`;
      case "header:NumberLiteral":
        return `expected the language version after \`sft\` (write \`sft 1\`), found ${found}`;
      case "importDecl:StringLiteral":
        return `expected a path string after \`import\` (like \`import "./base.sft"\`), found ${found}`;
      case "file:EOF":
        return `expected \`pipeline\` or \`import\`, found ${found}`;
      default:
        return `expected ${describeTokenType(expected)}, found ${found}`;
    }
  },
  buildNotAllInputParsedMessage({ firstRedundant }) {
    return `expected \`pipeline\` or \`import\`, found ${describeToken(firstRedundant)}`;
  },
  buildNoViableAltMessage({ actual, ruleName }) {
    const found = describeToken(actual[0]);
    if (ruleName === "value") return `expected ${valueWords}, found ${found}`;
    return `unexpected ${found}`;
  },
  buildEarlyExitMessage({ actual }) {
    return `unexpected ${describeToken(actual[0])}`;
  },
};

const maxNestedRepetitionRecoveries = 200;

/**
 * The grammar. Chevrotain's grammar validations (ambiguities, left recursion) need
 * `Object.groupBy`, which Node 20 lacks, so they are off by default; a test runs them.
 */
export class SftParser extends CstParser {
  constructor(options: { validate?: boolean } = {}) {
    super(allTokens, {
      recoveryEnabled: true,
      maxLookahead: 3,
      errorMessageProvider: messages,
      skipValidations: !options.validate,
    });
    this.tuneRecovery();
    this.performSelfAnalysis();
  }

  file = this.RULE("file", () => {
    this.MANY(() => {
      this.OR([
        { ALT: () => this.SUBRULE(this.header) },
        { ALT: () => this.SUBRULE(this.importDecl) },
        { ALT: () => this.SUBRULE(this.pipeline) },
      ]);
    });
  });

  header = this.RULE("header", () => {
    this.CONSUME(Sft);
    this.CONSUME(NumberLiteral);
  });

  importDecl = this.RULE("importDecl", () => {
    this.CONSUME(Import);
    this.CONSUME(StringLiteral);
  });

  pipeline = this.RULE("pipeline", () => {
    this.CONSUME(Pipeline);
    this.CONSUME(Name);
    this.OPTION(() => this.SUBRULE(this.extendsClause));
    this.CONSUME(LBrace);
    this.MANY(() => this.SUBRULE(this.section));
    this.CONSUME(RBrace);
  });

  extendsClause = this.RULE("extendsClause", () => {
    this.CONSUME(Extends);
    this.CONSUME(Name);
  });

  section = this.RULE("section", () => {
    this.CONSUME(SectionKeyword);
    this.OPTION(() => {
      this.CONSUME(Name, { LABEL: "kind" });
      this.OPTION2(() => this.CONSUME2(Name, { LABEL: "name" }));
    });
    this.CONSUME(LBrace);
    this.entries();
    this.CONSUME(RBrace);
  });

  entry = this.RULE("entry", () => {
    this.CONSUME(Name, { LABEL: "key" });
    this.CONSUME(Equals);
    this.SUBRULE(this.value);
  });

  value = this.RULE("value", () => {
    this.OR([
      { ALT: () => this.CONSUME(NumberLiteral) },
      { ALT: () => this.CONSUME(StringLiteral) },
      { ALT: () => this.SUBRULE(this.list) },
      { ALT: () => this.SUBRULE(this.object) },
      { ALT: () => this.CONSUME(TooDeep) },
    ]);
  });

  /** A bare name, or a typed object when `{` follows. */
  object = this.RULE("object", () => {
    this.CONSUME(Name);
    this.OPTION(() => {
      this.CONSUME(LBrace);
      this.entries();
      this.CONSUME(RBrace);
    });
  });

  list = this.RULE("list", () => {
    this.CONSUME(LBracket);
    this.OPTION(() => {
      this.SUBRULE(this.value);
      this.MANY(() => {
        this.CONSUME(Comma);
        this.SUBRULE2(this.value);
      });
      this.OPTION2(() => this.CONSUME2(Comma));
    });
    this.CONSUME(RBracket);
  });

  /**
   * Bounds on Chevrotain's error recovery, which otherwise fails on pathological input:
   * - It resumes a repetition after skipping bad tokens by calling the repetition again, one
   *   stack frame deeper each time, so thousands of errors in one loop would overflow the
   *   stack. Past a bound, the parser falls back to its other recovery (skip to a token that
   *   can follow the rule), which does not recurse.
   * - At the end of the input every open rule repeats a walk of the grammar to find where to
   *   resume (quadratic in the nesting depth), although the answer is known: the only token
   *   left is EOF, nothing can be skipped, and a missing closing token can only be inserted.
   * - The tokens that may follow a grammar position are recomputed by a grammar walk at every
   *   error; they depend on the position only, so they are remembered.
   */
  private tuneRecovery(): void {
    const atEnd = () => tokenMatcher(this.LA(1), EOF);
    let depth = 0;
    this.wrapInternal("attemptInRepetitionRecovery", (inherited, args) => {
      if (depth >= maxNestedRepetitionRecoveries || atEnd()) return undefined;
      depth++;
      try {
        return inherited(args);
      } finally {
        depth--;
      }
    });
    this.wrapInternal("findReSyncTokenType", (inherited, args) => (atEnd() ? EOF : inherited(args)));
    this.wrapInternal("getFollowsForInRuleRecovery", (inherited, args) => (atEnd() ? [EOF] : inherited(args)));
    const follows = new Map<string, unknown>();
    this.wrapInternal("getNextPossibleTokenTypes", (inherited, args) => {
      const path = args[0] as { ruleStack: string[]; occurrenceStack: number[]; lastTok: TokenType; lastTokOccurrence: number };
      const key = `${path.ruleStack.join()}|${path.occurrenceStack.join()}|${path.lastTok.name}|${path.lastTokOccurrence}`;
      if (!follows.has(key)) follows.set(key, inherited(args));
      return follows.get(key);
    });
  }

  /** Replaces one of Chevrotain's internal recovery methods on this instance. */
  private wrapInternal(name: string, wrapper: (inherited: (args: unknown[]) => unknown, args: unknown[]) => unknown): void {
    const inherited: unknown = Reflect.get(this, name);
    invariant(typeof inherited === "function", `chevrotain no longer has ${name}`);
    Reflect.set(this, name, (...args: unknown[]) => wrapper((a) => inherited.apply(this, a), args));
  }

  /**
   * The entries of a section or typed object, inlined into both rules so that Chevrotain's
   * in-repetition recovery can resynchronize on the closing `}`. A section keyword that is not
   * used as a key (`dataset belle {`, not `dataset = ...`) ends the loop: the `}` before it
   * is probably missing, and the parser then reports exactly that.
   */
  private entries(): void {
    this.MANY({
      GATE: () => !(tokenMatcher(this.LA(1), SectionKeyword) && !tokenMatcher(this.LA(2), Equals)),
      DEF: () => {
        this.SUBRULE(this.entry);
        this.OPTION3(() => this.CONSUME3(Comma));
      },
    });
  }
}

/** The one parser instance; reset per parse through `input`. */
export const sftParser = new SftParser();
