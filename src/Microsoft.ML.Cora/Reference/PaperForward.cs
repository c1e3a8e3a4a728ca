using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Llm;
using Microsoft.ML.Cora.Llm.Kernels;
using Microsoft.ML.Cora.Methods;
using Microsoft.ML.Cora.Prompting;
using Microsoft.ML.Cora.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora.Reference;

/// <summary>
/// A model's logits computed the way the paper's public code computes them, from the <see cref="CoraModel"/>'s own weights:
/// prompts tokenised afresh, left padding with an explicit attention mask, for CoRA the query generator's full attention to the
/// single CF token and its head on every query before the mean, x·A_b once per targeted projection, then the LLM's logits over
/// the whole vocabulary at every position with libtorch's own operations, and the "Yes" logit read at the last real token.
/// <para>
/// It is the oracle the fast path (<see cref="CoraModel.Logits(IReadOnlyList{Interaction}, IReadOnlyList{TokenizedPrompt})"/>) is
/// tested against: the same logits within float rounding, the same gradients, the same dropout distributions. It is also the
/// baseline of <c>cora bench --baseline paper</c>, with the model's plan set to <see cref="ComputePlan.Plain"/> so that the LLM
/// and the generator's dropout use libtorch too. Nothing trains or scores through it.
/// </para>
/// </summary>
public static class PaperForward
{
    /// <summary>The score logits [B] (float32) of a batch; keeps the graph when the trainable parts are in training mode.</summary>
    public static Tensor Logits(CoraModel model, IReadOnlyList<Interaction> rows)
    {
        if (!model.UsesLlm) throw new ArgumentException("MF scores with its CF model alone; the paper's forward is the LLM methods'.", nameof(model));
        var llm = model.Llm!;
        using var scope = torch.NewDisposeScope();
        // Left padding: every position moves right by the row's padding, CoLLM's soft-token slots too.
        var prompts = rows.Select(model.TokenizeAfresh).ToList();
        var (ids, mask) = llm.Pad(prompts.Select(p => (IReadOnlyList<int>)p.Ids).ToList(), left: true);          // [B, T]
        long t = ids.shape[1];
        prompts = prompts.Select(p => p with { Slots = p.Slots.Select(sl => (sl.position + (int)(t - p.Ids.Length), sl.slot)).ToArray() }).ToList();
        var items = rows.Select(r => (long)r.ItemId).ToArray();
        var embeds = llm.Model.Embed(ids);                                                                        // [B, T, D]
        IProjectionHook? hook;
        if (model.Trainable is CollaborativeLoraParts cora)
        {
            var a = Generator(cora.query_generator, CollaborativeLoraMethod.CfToken(model.Cf, rows, items),
                llm.Config.HiddenSize, model.Options.Rank);                                                      // [B, D, r]
            hook = new PerProjection(cora.collaborative_weights, a);
        }
        else (embeds, hook) = model.Method.Prepare(model.Trainable, model.Cf, embeds, rows, items, prompts);    // CoLLM's soft tokens, LoRA
        var all = llm.Model.Logits(embeds, mask, hook, fromEmbeddings: true, LlmKernels.None);                   // [B, T, V]
        var last = mask.mul(Scalars.Arange(t, mask.device)).argmax(1);                                           // [B]: the last real token
        var yes = all[Scalars.Arange(all.shape[0], all.device), last].narrow(1, model.YesTokenId, 1);             // [B, 1]
        return yes.squeeze(1).to(ScalarType.Float32).MoveToOuterDisposeScope();                                 // [B]
    }

    /// <summary>Scores in batches of <paramref name="batchSize"/> rows in their own order, without gradients.</summary>
    public static float[] Score(CoraModel model, IReadOnlyList<Interaction> rows, int batchSize)
    {
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "batchSize must be at least 1.");
        var result = new float[rows.Count];
        using var grad = torch.no_grad();
        for (int s = 0; s < rows.Count; s += batchSize)
        {
            using var scope = torch.NewDisposeScope();
            var batch = rows.Skip(s).Take(batchSize).ToList();
            Logits(model, batch).cpu().data<float>().ToArray().CopyTo(result, s);
        }
        return result;
    }

    /// <summary>CoRA's collaborative query generator as the paper writes it: the Q-Former's layers with full attention (the CF
    /// token is the cross-attention's one key), then the d·r head on every query, the mean over queries, L2 normalisation.</summary>
    /// <param name="cfToken">[B, cfWidth] = concat(user, item)</param>
    /// <returns>A: [B, d_model, r]</returns>
    internal static Tensor Generator(QueryGenerator g, Tensor cfToken, int dModel, int rank)
    {
        using var scope = torch.NewDisposeScope();
        long b = cfToken.shape[0];
        double p = g.Options.Dropout;
        bool training = g.training;
        var source = cfToken.mul(g.token_scale).unsqueeze(1);                                 // [B, 1, W]
        var q = nn.functional.dropout(g.query_norm.call(g.query_tokens.expand(b, -1, -1)), p, training);   // [B, Q, H]
        foreach (var layer in g.layers)
        {
            var h = Attention(layer.self_attention, q, q, g.Options.Heads, p, training);       // [B, Q, H]
            h = Attention(layer.cross_attention, h, source, g.Options.Heads, p, training);     // [B, Q, H]
            var f = nn.functional.dropout(layer.output.call(nn.functional.gelu(layer.intermediate.call(h))), p, training);
            q = layer.output_norm.call(h.add(f));                                             // [B, Q, H]
        }
        var v = g.head.call(q).mean(new long[] { 1 });                                        // [B, Q, d*r] -> [B, d*r]
        v = nn.functional.normalize(v, p: 2, dim: 1);
        return v.view(b, dModel, rank).MoveToOuterDisposeScope();                             // [B, d, r]
    }

    /// <summary>BERT's attention block in full: softmax attention of the queries over the source (dropout on its weights), output
    /// projection, dropout, residual, layer norm.</summary>
    /// <param name="x">[B, Q, H]</param><param name="source">[B, S, W]</param>
    internal static Tensor Attention(BertAttention a, Tensor x, Tensor source, int heads, double dropout, bool training)
    {
        using var scope = torch.NewDisposeScope();
        long b = x.shape[0], q = x.shape[1], s = source.shape[1], h = x.shape[2], hd = h / heads;
        var qh = a.query.call(x).view(b, q, heads, hd).transpose(1, 2);                       // [B, h, Q, hd]
        var kh = a.key.call(source).view(b, s, heads, hd).transpose(1, 2);                    // [B, h, S, hd]
        var vh = a.value.call(source).view(b, s, heads, hd).transpose(1, 2);                  // [B, h, S, hd]
        var att = nn.functional.scaled_dot_product_attention(qh, kh, vh, p: training ? dropout : 0.0);   // [B, h, Q, hd]
        var o = nn.functional.dropout(a.output.call(att.transpose(1, 2).reshape(b, q, h)), dropout, training);
        return a.layer_norm.call(x.add(o)).MoveToOuterDisposeScope();                         // [B, Q, H]
    }

    /// <summary>CoRA's collaborative weights with x·A_b computed for each projection on its own (libtorch's dropout).</summary>
    private sealed class PerProjection(CollaborativeWeights w, Tensor a) : IProjectionHook
    {
        public IProjectionHook Rows(Tensor rows) => new PerProjection(w, a.index_select(0, rows));

        public Tensor? Delta(ProjectionSite site, Tensor x) =>
            w.p.TryGetValue(CollaborativeWeights.Key(site), out var lin)
                ? LowRank.PerSample(x, a, lin, w.Scale, w.Dropout, w.training, fastDropout: false)    // [B, T, out]
                : null;
    }
}
