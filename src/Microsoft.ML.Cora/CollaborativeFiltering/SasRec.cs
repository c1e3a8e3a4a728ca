using Microsoft.ML.Cora.Data;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using Microsoft.ML.Cora.Runtime;

namespace Microsoft.ML.Cora.CollaborativeFiltering;

/// <summary>One SASRec block: causal self-attention (queries from the normed input, keys and values from the input) and a
/// point-wise feed-forward, each with a residual; pre-norm as Kang and McAuley's code.</summary>
internal sealed class SasRecBlock : nn.Module
{
#pragma warning disable IDE1006
    public LayerNorm attention_norm, ffn_norm;
    public Linear query, key, value, output, ffn1, ffn2;
#pragma warning restore IDE1006
    private readonly int _heads;
    private readonly double _dropout;

    public SasRecBlock(int index, int dim, int heads, double dropout) : base($"block{index}")
    {
        _heads = heads; _dropout = dropout;
        attention_norm = nn.LayerNorm(dim, 1e-8); ffn_norm = nn.LayerNorm(dim, 1e-8);
        query = nn.Linear(dim, dim); key = nn.Linear(dim, dim); value = nn.Linear(dim, dim); output = nn.Linear(dim, dim);
        ffn1 = nn.Linear(dim, dim); ffn2 = nn.Linear(dim, dim);
        RegisterComponents();
    }

    /// <param name="x">[B, L, d]</param>
    /// <param name="mask">bool, true = attend: [B, 1, L, L] (causal and not padding), or [B, 1, 1, L] (real keys) with <paramref name="lastOnly"/></param>
    /// <param name="lastOnly">compute the last position only (its keys and values from every position): [B, 1, d]</param>
    public Tensor Forward(Tensor x, Tensor mask, bool lastOnly = false)
    {
        using var scope = torch.NewDisposeScope();
        long b = x.shape[0], l = x.shape[1], d = x.shape[2], hd = d / _heads, lq = lastOnly ? 1 : l;
        var qn = attention_norm.call(lastOnly ? x.narrow(1, l - 1, 1) : x);                // [B, Lq, d]
        var q = query.call(qn).view(b, lq, _heads, hd).transpose(1, 2);                    // [B, h, Lq, hd]
        var k = key.call(x).view(b, l, _heads, hd).transpose(1, 2);                        // [B, h, L, hd]
        var v = value.call(x).view(b, l, _heads, hd).transpose(1, 2);
        var att = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask: mask, p: training ? _dropout : 0.0);
        var h = qn.add(nn.functional.dropout(output.call(att.transpose(1, 2).reshape(b, lq, d)), _dropout, training), Runtime.Scalars.One);
        var f = ffn_norm.call(h);
        var y = ffn2.call(nn.functional.dropout(nn.functional.relu(ffn1.call(f)), _dropout, training));
        return f.add(nn.functional.dropout(y, _dropout, training), Runtime.Scalars.One).MoveToOuterDisposeScope();    // [B, L, d]
    }
}

/// <summary>
/// SASRec (Kang and McAuley, 2018) as the CF stage (the paper's CoRA-SAS): causal self-attention over the user's liked-item history
/// (the row's <c>his</c>, oldest first, the last <c>SequenceLength</c> items, learned positions); the last position's hidden state is
/// the user embedding, the item table gives item embeddings, <c>&lt;u, i&gt;</c> is the score, trained with BCE on the label.
/// The user embedding depends on the row's history, so it is computed per row. Cold rows: history items unseen in training are left
/// out; an empty history gives the zero user vector (score 0), as does an unseen target item.
/// </summary>
internal sealed class SasRec : nn.Module, ICollaborativeModel
{
#pragma warning disable IDE1006
    public Embedding item_embedding, position_embedding;
    public ModuleList<SasRecBlock> blocks;
    public LayerNorm final_norm;
#pragma warning restore IDE1006
    public IdMap Users { get; }
    public IdMap Items { get; }
    public int MaxLength { get; }
    public int Heads { get; }
    public string Kind => "sasrec";
    /// <summary>True: the user is the encoder's reading of the liked history.</summary>
    public bool UserFromHistory => true;
    public int EmbeddingDim { get; }
    private readonly double _dropout;

    public SasRec(IdMap users, IdMap items, int dim, int blockCount, int heads, int maxLength, double dropout, long seed = CoraDefaults.Seed) : base("sasrec")
    {
        if (dim % heads != 0) throw new ArgumentException($"SASRec: heads ({heads}) must divide the embedding size ({dim}).");
        Users = users; Items = items; EmbeddingDim = dim; MaxLength = maxLength; Heads = heads; _dropout = dropout;
        torch.manual_seed(seed);
        item_embedding = nn.Embedding(items.Rows, dim);
        position_embedding = nn.Embedding(maxLength, dim);
        blocks = new ModuleList<SasRecBlock>(Enumerable.Range(0, blockCount).Select(i => new SasRecBlock(i, dim, heads, dropout)).ToArray());
        final_norm = nn.LayerNorm(dim, 1e-8);
        RegisterComponents();
        using var _ = torch.no_grad();
        var g = new torch.Generator((ulong)seed);
        item_embedding.weight!.normal_(0, 0.1, g);
        position_embedding.weight!.normal_(0, 0.1, g);
        ZeroUnknownRows();
    }

    private void ZeroUnknownRows()
    {
        using var _ = torch.no_grad();
        item_embedding.weight![0].zero_();
    }

    /// <summary>The histories as left-padded item rows, [B, L] int64 (0 = padding; unseen items left out, the last L kept).</summary>
    internal long[] Sequences(IReadOnlyList<Interaction> rows)
    {
        var seq = new long[rows.Count * MaxLength];
        for (int b = 0; b < rows.Count; b++)
        {
            var known = Items.Map(rows[b].History.Where(i => i != 0).Select(i => (long)i).ToArray()).Where(r => r != 0).ToArray();
            int n = Math.Min(MaxLength, known.Length);
            Array.Copy(known, known.Length - n, seq, b * MaxLength + MaxLength - n, n);
        }
        return seq;
    }

    /// <summary>Hidden states of item-row sequences, [B, L, d] (zero at padded positions).</summary>
    /// <param name="seq">[B, L] int64 item rows, left-padded with 0; L &lt;= MaxLength, the last column is position MaxLength - 1
    /// (a batch of short histories may drop its all-padding columns on the left: the real positions' states do not change)</param>
    /// <param name="lastOnly">the last position only, [B, 1, d]: the final block computes only its query, attention and
    /// feed-forward (the same values as the full computation; the user embedding reads nothing else)</param>
    internal Tensor Encode(Tensor seq, bool lastOnly = false)
    {
        using var scope = torch.NewDisposeScope();
        long b = seq.shape[0], l = seq.shape[1];
        var real = seq.ne(0);                                                                  // [B, L]
        var x = item_embedding.call(seq).mul(Runtime.Scalars.Of(Math.Sqrt(EmbeddingDim)))
            .add(position_embedding.call(Runtime.Scalars.Arange(MaxLength, seq.device).narrow(0, MaxLength - l, l)).unsqueeze(0), Runtime.Scalars.One);  // [B, L, d]
        x = nn.functional.dropout(x, _dropout, training).mul(real.unsqueeze(-1));
        var causal = torch.ones(l, l, dtype: ScalarType.Bool, device: seq.device).tril();     // [L, L]
        var eye = torch.eye(l, dtype: ScalarType.Bool, device: seq.device);                   // padded queries see themselves (no NaN)
        var keys = real.unsqueeze(1).unsqueeze(1);                                             // [B, 1, 1, L]
        var mask = causal.logical_and(keys).logical_or(eye);                                   // [B, 1, L, L]
        for (int i = 0; i < blocks.Count; i++)
        {
            if (lastOnly && i == blocks.Count - 1)
            {
                // The last position sees every real key (causality adds nothing); a row with no real item sees itself, as above.
                var lastKeys = keys.logical_or(Runtime.Scalars.Arange(l, seq.device).eq(Runtime.Scalars.Of((long)(l - 1))).view(1, 1, 1, l));
                x = blocks[i].Forward(x, lastKeys, lastOnly: true).mul(real.narrow(1, l - 1, 1).unsqueeze(-1));   // [B, 1, d]
                return final_norm.call(x).mul(real.narrow(1, l - 1, 1).unsqueeze(-1)).MoveToOuterDisposeScope();
            }
            x = blocks[i].Forward(x, mask).mul(real.unsqueeze(-1));
        }
        if (lastOnly) x = x.narrow(1, l - 1, 1);
        return final_norm.call(x).mul(real.narrow(1, l - x.shape[1], x.shape[1]).unsqueeze(-1)).MoveToOuterDisposeScope();
    }

    public bool KnowsUser(int userId) => Users.Contains(userId);
    public bool KnowsItem(int itemId) => Items.Contains(itemId);
    public IReadOnlyList<long> ItemIds => Items.Ids;
    public Device Device => item_embedding.weight!.device;
    public void MoveTo(Device device, ScalarType dtype) => this.to(device, dtype);
    public IEnumerable<Parameter> Weights => parameters();

    /// <summary>The last position's hidden state of each row's history (zero for an empty history).</summary>
    /// <remarks>Rows run in groups of similar history length, each without the padding columns its rows all share, and the final
    /// block computes the last position only: the same values as one padded batch of <see cref="MaxLength"/> columns, less work
    /// (ML-1M's histories have a median of 22 items against a window of 50).</remarks>
    public Tensor UserEmbeddings(IReadOnlyList<Interaction> rows)
    {
        using var scope = torch.NewDisposeScope();
        var seq = Sequences(rows);
        int n = rows.Count, l = MaxLength;
        var lengths = new int[n];
        for (int b = 0; b < n; b++) { int k = 0; while (k < l && seq[b * l + l - 1 - k] != 0) k++; lengths[b] = k; }
        var result = torch.zeros(n, EmbeddingDim, dtype: item_embedding.weight!.dtype, device: Device);   // empty histories stay zero
        var order = Enumerable.Range(0, n).Where(b => lengths[b] > 0).OrderBy(b => lengths[b]).ToArray();
        foreach (var group in LengthGroups(order, lengths))
        {
            int width = lengths[group[^1]];
            var part = new long[group.Length * width];
            for (int g = 0; g < group.Length; g++) Array.Copy(seq, group[g] * l + l - width, part, g * width, width);
            var idx = torch.tensor(group.Select(b => (long)b).ToArray(), device: Device);
            var h = Encode(torch.tensor(part, new long[] { group.Length, width }, device: Device), lastOnly: true).squeeze(1);  // [G, d]
            result = result.index_copy(0, idx, h);
        }
        return result.MoveToOuterDisposeScope();                                               // [B, d]
    }

    /// <summary>Rows (sorted by history length) cut where a group's padded size (rows x longest) would exceed the size of one group
    /// per length doubling: at most log2(MaxLength) + 1 groups, each at least half full.</summary>
    private static IEnumerable<int[]> LengthGroups(int[] sortedRows, int[] lengths)
    {
        int start = 0;
        while (start < sortedRows.Length)
        {
            int limit = 2 * lengths[sortedRows[start]], end = start;
            while (end < sortedRows.Length && lengths[sortedRows[end]] <= limit) end++;
            yield return sortedRows[start..end];
            start = end;
        }
    }

    public Tensor ItemEmbeddings(long[] itemIds) => item_embedding.call(torch.tensor(Items.Map(itemIds), device: Device));
    public Tensor Score(IReadOnlyList<Interaction> rows) => CollaborativeTraining.Dot(this, rows);
    public float[] ScoreRows(IReadOnlyList<Interaction> rows) => CollaborativeTraining.ScoreRows(this, rows, 1024);

    public static SasRec Train(IReadOnlyList<Interaction> train, IReadOnlyList<Interaction> valid, MatrixFactorizationOptions? options = null,
        Action<string>? log = null, CancellationToken ct = default)
    {
        var o = options ?? new MatrixFactorizationOptions();
        OptionChecks.ThrowIfAny(o.Validate("MatrixFactorization."), nameof(options));
        torch.manual_seed(o.Seed);
        var m = new SasRec(new IdMap(train.Select(r => (long)r.UserId)), new IdMap(train.Select(r => (long)r.ItemId)), o.EmbeddingDimFor(CollaborativeKind.SasRec),
            o.SequenceBlocks, o.SequenceHeads, o.SequenceLength, o.SequenceDropout, o.Seed);
        CollaborativeTraining.Run(m, m, train, valid, o, CollaborativeKind.SasRec, log, ct, afterStep: m.ZeroUnknownRows);
        return m;
    }

    public Dictionary<string, Tensor> ExportState()
    {
        var state = state_dict().ToDictionary(kv => kv.Key, kv => kv.Value);
        state["user_ids"] = torch.tensor(Users.Ids.ToArray());
        state["item_ids"] = torch.tensor(Items.Ids.ToArray());
        state["config"] = torch.tensor(new long[] { blocks.Count, Heads, MaxLength });
        return state;
    }

    /// <summary>SASRec as a CF unit: CoLLM's tuned ML-1M defaults.</summary>
    public static CollaborativeModelUnit Registration { get; } = new(CollaborativeKind.SasRec, "sasrec", "SASRec", new[] { "sas" },
        CoraDefaults.SasRecEmbeddingDim, CoraDefaults.SasRecLearningRate, CoraDefaults.SasRecWeightDecay, CoraDefaults.SasRecCfTokenRms,
        (t, v, o, log, ct) => Train(t, v, o, log, ct), ImportState);

    public static SasRec ImportState(Func<string, Tensor> read)
    {
        var uids = read("user_ids").data<long>().ToArray();
        var iids = read("item_ids").data<long>().ToArray();
        var cfg = read("config").data<long>().ToArray();
        var items = read("item_embedding.weight");
        if (cfg.Length != 3 || cfg[0] < 1 || cfg[0] > 16 || cfg[1] < 1 || cfg[2] < 1 || cfg[2] > 4096 || items.dim() != 2 || items.shape[0] != iids.Length + 1)
            throw new InvalidDataException($"SASRec state: config [{string.Join(",", cfg)}] or item table [{string.Join(",", items.shape)}] does not match {iids.Length} items.");
        // Every weight the model will allocate must already be in the file with its shape (read, so its bytes are present): a
        // small file cannot declare a width whose blocks need gigabytes.
        long d = items.shape[1];
        using (var scope = torch.NewDisposeScope())
        {
            void Expect(string name, params long[] shape)
            {
                var t = read(name);
                if (!t.shape.SequenceEqual(shape)) throw new InvalidDataException($"SASRec state: '{name}' is [{string.Join(",", t.shape)}], expected [{string.Join(",", shape)}].");
            }
            Expect("position_embedding.weight", cfg[2], d);
            for (int b = 0; b < cfg[0]; b++)
                foreach (var lin in new[] { "query", "key", "value", "output", "ffn1", "ffn2" }) Expect($"blocks.{b}.{lin}.weight", d, d);
        }
        var m = new SasRec(new IdMap(uids), new IdMap(iids), (int)d, (int)cfg[0], (int)cfg[1], (int)cfg[2], 0);
        using (torch.no_grad())
            foreach (var (name, t) in m.state_dict())
            {
                var src = read(name);
                if (!src.shape.SequenceEqual(t.shape)) throw new InvalidDataException($"SASRec state: '{name}' is [{string.Join(",", src.shape)}], expected [{string.Join(",", t.shape)}].");
                t.copy_(src);
            }
        foreach (var p in m.parameters()) p.requires_grad = false;
        m.eval();
        return m;
    }
}
