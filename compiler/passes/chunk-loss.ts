// The loss head in row chunks. A training step's logits are (B·T, V) in f32, and so are their
// gradients: for ChatGLM-6B (V = 130,528) at 2,048 tokens, 1.0 GiB each, more than every other
// activation of a checkpointed step together. When the head's weight is frozen (LoRA, QLoRA), the
// loss is rebuilt as the sum over chunks of rows of each chunk's cross-entropy, divided by the
// tokens of the whole batch: one chunk's logits are computed, turned into its loss and logits
// gradient in one launch, and multiplied back into the hidden state's gradient before the next
// chunk's logits exist. The value is the same mean (summed in another order); the hidden state's
// gradient is the chunks' gradients side by side. A trained head keeps one product: each chunk
// would add a (V, C) weight gradient of its own. Evaluation (the loss alone) takes chunks too.
import * as b from "../ir/build.ts";
import { graph, type Graph, type Node } from "../ir/node.ts";

/**
 * The most bytes of f32 logits one chunk holds. The number of chunks follows from it alone: at the
 * largest vocabulary (ChatGLM-6B's 130,528) a chunk is 128 rows, whose product with the head
 * (128 × hidden × vocabulary) should outweigh its few launches (the chunk's product, its loss and
 * its backward product) many times over, so more chunks are expected to cost no launch overhead
 * worth a bound (not measured on a GPU).
 */
export const LOSS_CHUNK_BYTES = 64 * 2 ** 20;

/**
 * `loss` with its head computed in chunks of rows when it is the cross-entropy of a linear head
 * (x W^T, optionally + bias) whose weight and bias are not in `trained` and whose logits exceed
 * `chunkBytes`; otherwise `loss` itself.
 */
export function chunkLoss(loss: Node, trained: ReadonlySet<Node>, chunkBytes = LOSS_CHUNK_BYTES): Node {
  if (loss.op !== "cross_entropy" || loss.inputs.length !== 2) return loss;
  const [logits, labels] = loss.inputs;
  const head = linearHead(logits);
  if (!head || trained.has(head.weight) || (head.bias && trained.has(head.bias))) return loss;
  const [rows, vocab] = logits.shape;
  const chunkRows = rowsPerChunk(vocab, chunkBytes);
  if (chunkRows >= rows) return loss;
  const parts: Node[] = [];
  for (let start = 0; start < rows; start += chunkRows) {
    const end = Math.min(rows, start + chunkRows);
    let chunk = b.matmul(b.slice(head.x, 0, start, end), head.weight, { transB: true }); // (rows, V)
    if (head.bias) chunk = b.add(chunk, b.expandTo(head.bias, chunk.shape));
    parts.push(b.crossEntropy(chunk, b.slice(labels, 0, start, end), loss.attrs.ignoreIndex, labels));
  }
  return parts.reduce((sum, part) => b.add(sum, part));
}

/** An evaluation program: the loss alone, its head (frozen while evaluating) in chunks. */
export function evaluationGraph(loss: Node, chunkBytes = LOSS_CHUNK_BYTES): Graph {
  return graph([["loss", chunkLoss(loss, new Set(), chunkBytes)]]);
}

// Rows whose f32 logits fit `bytes`: a multiple of 16 when that is at least 16 (their offsets in
// an f32 hidden state are then 256-byte multiples for any hidden size a multiple of 4, which a
// matmul binds in place), else at least one.
function rowsPerChunk(vocab: number, bytes: number): number {
  const rows = Math.floor(bytes / (4 * vocab));
  return rows >= 16 ? rows - (rows % 16) : Math.max(1, rows);
}

// x W^T of a 2-D x and a weight parameter, optionally + an expanded bias parameter.
function linearHead(logits: Node): { x: Node; weight: Node; bias?: Node } | undefined {
  let product = logits;
  let bias: Node | undefined;
  if (logits.op === "add") {
    const [y, expanded] = logits.inputs;
    let source = expanded;
    while (source.op === "broadcast" || source.op === "reshape") source = source.inputs[0];
    if (source.op !== "param") return undefined;
    [product, bias] = [y, source];
  }
  const [x, weight] = product.inputs;
  const plain = product.op === "matmul" && product.attrs.transB === true && !product.attrs.transA && x.shape.length === 2 && weight.op === "param";
  return plain ? { x, weight, bias } : undefined;
}
