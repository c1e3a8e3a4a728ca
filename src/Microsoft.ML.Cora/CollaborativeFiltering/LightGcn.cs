using Microsoft.ML.Cora.Data;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using Microsoft.ML.Cora.Runtime;

namespace Microsoft.ML.Cora.CollaborativeFiltering;

/// <summary>
/// LightGCN (He et al., 2020) as the CF stage (the paper's CoRA-LGCN): ego embeddings of users and items propagated K times over
/// the symmetric-normalised user-item graph of the training positives, <c>E_(k+1) = D^-1/2 A D^-1/2 E_k</c> (a sparse matrix,
/// never a dense adjacency), the layer outputs averaged, <c>&lt;u, i&gt;</c> as the score. Trained like the MF stage.
/// Cold rows: an id unseen in training gets the zero vector (score 0); a user or item seen only in negative rows has no edges,
/// so its embedding is its own ego embedding divided by K + 1.
/// </summary>
internal sealed class LightGcn : nn.Module, ICollaborativeModel
{
#pragma warning disable IDE1006
    public Embedding user_embedding, item_embedding;
#pragma warning restore IDE1006
    public IdMap Users { get; }
    public IdMap Items { get; }
    public int Layers { get; }
    public string Kind => "lightgcn";
    public int EmbeddingDim { get; }
    // [N, N] normalised adjacency over user rows (0..U) then item rows (U+1..U+I+1); null once frozen (after loading).
    private Tensor? _graph;
    // The propagated tables, used outside training (recomputed by Freeze).
    private Tensor? _userFinal, _itemFinal;

    public LightGcn(IdMap users, IdMap items, int dim, int layers, IEnumerable<(int user, int item)> positives, long seed = CoraDefaults.Seed) : base("lightgcn")
    {
        Users = users; Items = items; EmbeddingDim = dim; Layers = layers;
        user_embedding = nn.Embedding(users.Rows, dim);
        item_embedding = nn.Embedding(items.Rows, dim);
        RegisterComponents();
        using (torch.no_grad())
        {
            var g = new torch.Generator((ulong)seed);
            user_embedding.weight!.normal_(0, 0.1, g);
            item_embedding.weight!.normal_(0, 0.1, g);
        }
        ZeroUnknownRows();
        _graph = NormalisedGraph(users, items, positives);
    }

    /// <summary>D^-1/2 A D^-1/2 of the bipartite graph of <paramref name="positives"/> (each pair once), as a sparse [N, N] tensor.</summary>
    internal static Tensor NormalisedGraph(IdMap users, IdMap items, IEnumerable<(int user, int item)> positives)
    {
        long offset = users.Rows, n = users.Rows + items.Rows;
        var pairs = positives.Where(p => users.Contains(p.user) && items.Contains(p.item)).Distinct()
            .Select(p => (u: users.Map(new long[] { p.user })[0], i: offset + items.Map(new long[] { p.item })[0])).ToList();
        var degree = new double[n];
        foreach (var (u, i) in pairs) { degree[u]++; degree[i]++; }
        var rows = new long[2 * pairs.Count]; var cols = new long[2 * pairs.Count]; var vals = new float[2 * pairs.Count];
        for (int k = 0; k < pairs.Count; k++)
        {
            var (u, i) = pairs[k];
            float w = (float)(1.0 / Math.Sqrt(degree[u] * degree[i]));
            (rows[2 * k], cols[2 * k], vals[2 * k]) = (u, i, w);
            (rows[2 * k + 1], cols[2 * k + 1], vals[2 * k + 1]) = (i, u, w);
        }
        var idx = torch.stack(new[] { torch.tensor(rows), torch.tensor(cols) });     // [2, nnz]
        return torch.sparse_coo_tensor(idx, torch.tensor(vals), new[] { n, n });
    }

    private void ZeroUnknownRows()
    {
        using var _ = torch.no_grad();
        user_embedding.weight![0].zero_();
        item_embedding.weight![0].zero_();
    }

    /// <summary>The propagated tables: mean over k = 0..K of Â^k E_0, split into users [U+1, d] and items [I+1, d].</summary>
    internal (Tensor users, Tensor items) Propagate()
    {
        using var scope = torch.NewDisposeScope();
        var e = torch.cat(new[] { user_embedding.weight!, item_embedding.weight! }, 0);   // [N, d]
        if (_graph is null) return (user_embedding.weight!.alias().MoveToOuterDisposeScope(), item_embedding.weight!.alias().MoveToOuterDisposeScope());
        var sum = e;
        for (int k = 0; k < Layers; k++)
        {
            e = _graph.mm(e);                                                                 // [N, d]
            sum = sum.add(e, Runtime.Scalars.One);
        }
        var mean = sum.div(Runtime.Scalars.Of((double)(Layers + 1)));
        long u = Users.Rows;
        return (mean.narrow(0, 0, u).MoveToOuterDisposeScope(), mean.narrow(0, u, Items.Rows).MoveToOuterDisposeScope());
    }

    /// <summary>Recomputes the propagated tables used outside training (after each epoch and after training).</summary>
    internal void Freeze()
    {
        using var _ = torch.no_grad();
        var (u, i) = Propagate();
        _userFinal?.Dispose(); _itemFinal?.Dispose();
        // Kept beyond any caller's dispose scope (Freeze can run lazily inside one).
        _userFinal = u.detach().DetachFromDisposeScope(); _itemFinal = i.detach().DetachFromDisposeScope();
        u.Dispose(); i.Dispose();
    }

    /// <summary>The tables to read: propagated now in training (in the caller's dispose scope), else the cached propagated ones.</summary>
    private (Tensor users, Tensor items) Tables()
    {
        if (training && _graph is not null) return Propagate();
        if (_userFinal is null) Freeze();
        return (_userFinal!, _itemFinal!);
    }

    private Tensor UserRows(Tensor table, IReadOnlyList<Interaction> rows) =>
        table.index_select(0, torch.tensor(Users.Map(rows.Select(r => (long)r.UserId).ToArray()), device: Device));
    private Tensor ItemRows(Tensor table, long[] itemIds) => table.index_select(0, torch.tensor(Items.Map(itemIds), device: Device));

    public bool KnowsUser(int userId) => Users.Contains(userId);
    public bool KnowsItem(int itemId) => Items.Contains(itemId);
    public IReadOnlyList<long> ItemIds => Items.Ids;
    public Device Device => user_embedding.weight!.device;
    public IEnumerable<Parameter> Weights => parameters();

    public void MoveTo(Device device, ScalarType dtype)
    {
        this.to(device, dtype);
        if (_graph is not null) { var g = _graph.to(device).to(dtype); _graph.Dispose(); _graph = g; }
        _userFinal?.Dispose(); _itemFinal?.Dispose(); _userFinal = _itemFinal = null;
    }

    public Tensor UserEmbeddings(IReadOnlyList<Interaction> rows)
    {
        using var scope = torch.NewDisposeScope();
        return UserRows(Tables().users, rows).MoveToOuterDisposeScope();
    }

    public Tensor ItemEmbeddings(long[] itemIds)
    {
        using var scope = torch.NewDisposeScope();
        return ItemRows(Tables().items, itemIds).MoveToOuterDisposeScope();
    }

    /// <summary>&lt;u, i&gt; per row, [B]; in training the graph is propagated once for the batch.</summary>
    public Tensor Score(IReadOnlyList<Interaction> rows)
    {
        using var scope = torch.NewDisposeScope();
        var (u, i) = Tables();
        return UserRows(u, rows).mul(ItemRows(i, rows.Select(r => (long)r.ItemId).ToArray())).sum(1).MoveToOuterDisposeScope();   // [B]
    }

    public float[] ScoreRows(IReadOnlyList<Interaction> rows) => CollaborativeTraining.ScoreRows(this, rows);

    /// <summary>Trains LightGCN on the training rows' positives (the graph) with BCE on every row's label.</summary>
    public static LightGcn Train(IReadOnlyList<Interaction> train, IReadOnlyList<Interaction> valid, MatrixFactorizationOptions? options = null,
        Action<string>? log = null, CancellationToken ct = default)
    {
        var o = options ?? new MatrixFactorizationOptions();
        OptionChecks.ThrowIfAny(o.Validate("MatrixFactorization."), nameof(options));
        torch.manual_seed(o.Seed);
        var m = new LightGcn(new IdMap(train.Select(r => (long)r.UserId)), new IdMap(train.Select(r => (long)r.ItemId)), o.EmbeddingDimFor(CollaborativeKind.LightGcn), o.GraphLayers,
            train.Where(r => r.Label).Select(r => (r.UserId, r.ItemId)), o.Seed);
        CollaborativeTraining.Run(m, m, train, valid, o, CollaborativeKind.LightGcn, log, ct, afterStep: m.ZeroUnknownRows, afterEpoch: m.Freeze);
        return m;
    }

    /// <summary>State for saving: the propagated tables (what scoring reads), the ids and K.</summary>
    public Dictionary<string, Tensor> ExportState()
    {
        if (_userFinal is null) Freeze();
        return new()
        {
            ["user_embedding.weight"] = _userFinal!,
            ["item_embedding.weight"] = _itemFinal!,
            ["user_ids"] = torch.tensor(Users.Ids.ToArray()),
            ["item_ids"] = torch.tensor(Items.Ids.ToArray()),
            ["layers"] = torch.tensor(new long[] { Layers }),
        };
    }

    /// <summary>LightGCN as a CF unit: the MF stage's defaults.</summary>
    public static CollaborativeModelUnit Registration { get; } = new(CollaborativeKind.LightGcn, "lightgcn", "LightGCN", new[] { "lgcn" },
        CoraDefaults.MfEmbeddingDim, CoraDefaults.MfLearningRate, CoraDefaults.MfWeightDecay, CoraDefaults.LightGcnCfTokenRms,
        (t, v, o, log, ct) => Train(t, v, o, log, ct), ImportState);

    /// <summary>A frozen LightGCN from saved propagated tables (scores equal to the saved model's).</summary>
    public static LightGcn ImportState(Func<string, Tensor> read)
    {
        var uids = read("user_ids").data<long>().ToArray();
        var iids = read("item_ids").data<long>().ToArray();
        var u = read("user_embedding.weight");
        var i = read("item_embedding.weight");
        int layers = (int)read("layers").data<long>()[0];
        if (u.dim() != 2 || i.dim() != 2 || u.shape[0] != uids.Length + 1 || i.shape[0] != iids.Length + 1 || u.shape[1] != i.shape[1])
            throw new InvalidDataException($"LightGCN state: tables [{string.Join(",", u.shape)}] and [{string.Join(",", i.shape)}] do not match the id lists ({uids.Length}+1, {iids.Length}+1).");
        var m = new LightGcn(new IdMap(uids), new IdMap(iids), (int)u.shape[1], layers, Array.Empty<(int, int)>());
        m._graph?.Dispose(); m._graph = null;                                                 // frozen: the tables are final
        using (torch.no_grad()) { m.user_embedding.weight!.copy_(u); m.item_embedding.weight!.copy_(i); }
        foreach (var p in m.parameters()) p.requires_grad = false;
        m.eval();
        return m;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) { _graph?.Dispose(); _userFinal?.Dispose(); _itemFinal?.Dispose(); }
        base.Dispose(disposing);
    }
}
