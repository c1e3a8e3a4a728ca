using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Evaluation;
using Microsoft.ML.Cora.Llm;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora.Collaborative;

/// <summary>
/// The CF stage behind CoRA: user and item embeddings for ids, and a CF score. MF implements it; LightGCN or
/// SASRec (CoRA-LGCN / CoRA-SAS) can be added by implementing this interface, nothing else changes.
/// </summary>
public interface ICollaborativeModel
{
    /// <summary>"mf", "lightgcn", ...</summary>
    string Kind { get; }
    int EmbeddingDim { get; }
    bool KnowsUser(int userId);
    bool KnowsItem(int itemId);
    /// <summary>[B, d]. Unknown ids get the zero vector (documented cold-start fallback).</summary>
    Tensor UserEmbeddings(long[] userIds);
    /// <summary>[B, d]. Unknown ids get the zero vector.</summary>
    Tensor ItemEmbeddings(long[] itemIds);
    /// <summary>CF logits, [B].</summary>
    Tensor Score(long[] userIds, long[] itemIds);
}

/// <summary>Maps raw ids to embedding rows; row 0 is reserved for unknown ids and stays zero.</summary>
public sealed class IdMap
{
    private readonly Dictionary<long, long> _rows = new();
    public IReadOnlyList<long> Ids { get; }
    public IdMap(IEnumerable<long> ids)
    {
        Ids = ids.Distinct().OrderBy(x => x).ToArray();
        for (int i = 0; i < Ids.Count; i++) _rows[Ids[i]] = i + 1;
    }
    public int Rows => Ids.Count + 1;
    public bool Contains(long id) => _rows.ContainsKey(id);
    public long[] Map(long[] ids) => ids.Select(i => _rows.TryGetValue(i, out var r) ? r : 0L).ToArray();
}

/// <summary>Options of the MF CF stage (CoLLM/CoRA's values).</summary>
public sealed record MatrixFactorizationOptions
{
    /// <summary>Embedding size of users and items. CoRA uses 256; the concat [u; i] (2x) feeds the query generator.</summary>
    public int EmbeddingDim { get; init; } = 256;
    /// <summary>Adam learning rate (1e-3). Lower it if validation AUC oscillates.</summary>
    public double LearningRate { get; init; } = 1e-3;
    /// <summary>Adam weight decay (1e-4): the main guard against over-fitting the sparse matrix.</summary>
    public double WeightDecay { get; init; } = 1e-4;
    public int BatchSize { get; init; } = 2048;
    public int MaxEpochs { get; init; } = 200;
    /// <summary>Stop after this many epochs without a better validation AUC.</summary>
    public int Patience { get; init; } = 10;
    public long Seed { get; init; } = 2023;
}

/// <summary>
/// Matrix factorisation as CoLLM and CoRA use it: score = &lt;u, i&gt;, BCE on the click label.
/// Also built from embeddings trained elsewhere (e.g. ML.NET's MatrixFactorizationModelParameters
/// LeftFactorMatrix / RightFactorMatrix) through <see cref="FromMatrices"/>.
/// </summary>
public sealed class MatrixFactorization : nn.Module, ICollaborativeModel
{
#pragma warning disable IDE1006
    public Embedding user_embedding, item_embedding;
#pragma warning restore IDE1006
    public IdMap Users { get; }
    public IdMap Items { get; }
    public string Kind => "mf";
    public int EmbeddingDim { get; }

    public MatrixFactorization(IdMap users, IdMap items, int dim, long seed = 2023) : base("mf")
    {
        Users = users; Items = items; EmbeddingDim = dim;
        user_embedding = nn.Embedding(users.Rows, dim);
        item_embedding = nn.Embedding(items.Rows, dim);
        RegisterComponents();
        using var _ = torch.no_grad();
        var g = new torch.Generator((ulong)seed);
        user_embedding.weight!.normal_(0, 0.1, g);
        item_embedding.weight!.normal_(0, 0.1, g);
        ZeroUnknownRows();
    }

    private void ZeroUnknownRows()
    {
        using var _ = torch.no_grad();
        user_embedding.weight![0].zero_();
        item_embedding.weight![0].zero_();
    }

    /// <summary>
    /// Wraps embeddings a user already has: row-major [users, k] and [items, k] float matrices with the id of
    /// each row (ML.NET MF: LeftFactorMatrix with NumberOfRows/ApproximationRank, row r = key r + 1).
    /// </summary>
    public static MatrixFactorization FromMatrices(IReadOnlyList<float> userFactors, IReadOnlyList<long> userIds,
        IReadOnlyList<float> itemFactors, IReadOnlyList<long> itemIds, int rank)
    {
        if (rank <= 0) throw new ArgumentOutOfRangeException(nameof(rank), "rank must be positive.");
        if (userFactors.Count != userIds.Count * rank)
            throw new ArgumentException($"userFactors has {userFactors.Count} values; {userIds.Count} users x rank {rank} needs {userIds.Count * rank}.", nameof(userFactors));
        if (itemFactors.Count != itemIds.Count * rank)
            throw new ArgumentException($"itemFactors has {itemFactors.Count} values; {itemIds.Count} items x rank {rank} needs {itemIds.Count * rank}.", nameof(itemFactors));
        if (userIds.Distinct().Count() != userIds.Count) throw new ArgumentException("userIds contains duplicates.", nameof(userIds));
        if (itemIds.Distinct().Count() != itemIds.Count) throw new ArgumentException("itemIds contains duplicates.", nameof(itemIds));
        var mf = new MatrixFactorization(new IdMap(userIds), new IdMap(itemIds), rank);
        using var _ = torch.no_grad();
        void Fill(Embedding e, IdMap map, IReadOnlyList<float> f, IReadOnlyList<long> ids)
        {
            var rows = map.Map(ids.ToArray());
            var src = torch.tensor(f.ToArray(), new long[] { ids.Count, rank });
            e.weight!.index_copy_(0, torch.tensor(rows), src);
        }
        Fill(mf.user_embedding, mf.Users, userFactors, userIds);
        Fill(mf.item_embedding, mf.Items, itemFactors, itemIds);
        foreach (var p in mf.parameters()) p.requires_grad = false;
        return mf;
    }

    public bool KnowsUser(int userId) => Users.Contains(userId);
    public bool KnowsItem(int itemId) => Items.Contains(itemId);
    private Device Dev => user_embedding.weight!.device;
    public Tensor UserEmbeddings(long[] userIds) => user_embedding.call(torch.tensor(Users.Map(userIds), device: Dev));
    public Tensor ItemEmbeddings(long[] itemIds) => item_embedding.call(torch.tensor(Items.Map(itemIds), device: Dev));

    public Tensor Score(long[] userIds, long[] itemIds)
    {
        using var scope = torch.NewDisposeScope();
        return UserEmbeddings(userIds).mul(ItemEmbeddings(itemIds)).sum(1).MoveToOuterDisposeScope();  // [B]
    }

    public float[] ScoreRows(IReadOnlyList<Interaction> rows)
    {
        using var _ = torch.no_grad();
        using var s = Score(rows.Select(r => (long)r.UserId).ToArray(), rows.Select(r => (long)r.ItemId).ToArray());
        return s.data<float>().ToArray();
    }

    /// <summary>Trains MF with Adam and BCE, early stopping on validation AUC (the best epoch's weights are kept).</summary>
    public static MatrixFactorization Train(IReadOnlyList<Interaction> train, IReadOnlyList<Interaction> valid, MatrixFactorizationOptions? options = null,
        Action<string>? log = null, CancellationToken ct = default)
    {
        var o = options ?? new MatrixFactorizationOptions();
        torch.manual_seed(o.Seed);
        var mf = new MatrixFactorization(new IdMap(train.Select(r => (long)r.UserId)), new IdMap(train.Select(r => (long)r.ItemId)), o.EmbeddingDim, o.Seed);
        var opt = torch.optim.Adam(mf.parameters(), o.LearningRate, weight_decay: o.WeightDecay);
        var rng = new Random((int)o.Seed);
        using var best = new Training.BestSnapshot();
        int sinceBest = 0;
        var order = Enumerable.Range(0, train.Count).ToArray();
        for (int epoch = 1; epoch <= o.MaxEpochs; epoch++)
        {
            ct.ThrowIfCancellationRequested();
            rng.Shuffle(order);
            mf.train();
            double lossSum = 0; int batches = 0;
            for (int s = 0; s < order.Length; s += o.BatchSize)
            {
                using var scope = torch.NewDisposeScope();
                var idx = order.Skip(s).Take(o.BatchSize).Select(i => train[i]).ToArray();
                var logits = mf.Score(idx.Select(r => (long)r.UserId).ToArray(), idx.Select(r => (long)r.ItemId).ToArray());
                var y = torch.tensor(idx.Select(r => r.Label ? 1f : 0f).ToArray());
                var loss = nn.functional.binary_cross_entropy_with_logits(logits, y);
                opt.zero_grad();
                loss.backward();
                opt.step();
                mf.ZeroUnknownRows();
                lossSum += loss.item<float>(); batches++;
            }
            mf.eval();
            var scores = mf.ScoreRows(valid);
            double auc = Metrics.Auc(scores, valid.Select(r => r.Label).ToArray());
            log?.Invoke($"mf epoch {epoch}: loss {lossSum / batches:F4}, valid AUC {auc:F4}");
            if (best.Offer(auc, mf, epoch)) sinceBest = 0;
            else if (++sinceBest >= o.Patience) break;
        }
        best.Restore(mf);
        foreach (var p in mf.parameters()) p.requires_grad = false;
        mf.eval();
        return mf;
    }

    /// <summary>State for saving: embeddings and the id of each row.</summary>
    public Dictionary<string, Tensor> ExportState() => new()
    {
        ["user_embedding.weight"] = user_embedding.weight!,
        ["item_embedding.weight"] = item_embedding.weight!,
        ["user_ids"] = torch.tensor(Users.Ids.ToArray()),
        ["item_ids"] = torch.tensor(Items.Ids.ToArray()),
    };

    public static MatrixFactorization ImportState(Func<string, Tensor> read)
    {
        var uids = read("user_ids").data<long>().ToArray();
        var iids = read("item_ids").data<long>().ToArray();
        var u = read("user_embedding.weight");
        var i = read("item_embedding.weight");
        var mf = new MatrixFactorization(new IdMap(uids), new IdMap(iids), (int)u.shape[1]);
        if (u.shape[0] != uids.Length + 1 || i.shape[0] != iids.Length + 1)
            throw new InvalidDataException($"MF state: embedding rows ({u.shape[0]}, {i.shape[0]}) do not match the id lists ({uids.Length}+1, {iids.Length}+1).");
        using var _ = torch.no_grad();
        mf.user_embedding.weight!.copy_(u);
        mf.item_embedding.weight!.copy_(i);
        foreach (var p in mf.parameters()) p.requires_grad = false;
        mf.eval();
        return mf;
    }
}
