using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Evaluation;
using Microsoft.ML.Cora.Llm;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using Microsoft.ML.Cora.Runtime;
using Microsoft.ML.Cora.IO;

namespace Microsoft.ML.Cora.CollaborativeFiltering;

/// <summary>
/// The CF stage behind CoRA: user and item embeddings for ids, and a CF score. Every part of Cora uses CF models through this
/// interface (training, saving, loading, scoring, candidate retrieval); <see cref="MatrixFactorization"/> implements it, and a
/// new CF model (LightGCN, SASRec: the paper's CoRA-LGCN / CoRA-SAS) is one more implementation plus one line in
/// <see cref="CollaborativeModels.Import"/>.
/// </summary>
public interface ICollaborativeModel : IDisposable
{
    /// <summary>"mf", "lightgcn", ... (stored in saved models).</summary>
    string Kind { get; }
    int EmbeddingDim { get; }
    bool KnowsUser(int userId);
    bool KnowsItem(int itemId);
    /// <summary>The item ids the model has embeddings for (candidate retrieval scores these).</summary>
    IReadOnlyList<long> ItemIds { get; }
    /// <summary>[B, d] user embeddings of the rows: by user id (MF, LightGCN) or from the row's liked history (SASRec). Cold users
    /// get the zero vector (documented cold-start fallback of each model).</summary>
    Tensor UserEmbeddings(IReadOnlyList<Interaction> rows);
    /// <summary>[B, d]. Unknown ids get the zero vector.</summary>
    Tensor ItemEmbeddings(long[] itemIds);
    /// <summary>CF logits of the rows, [B] (graph kept in training mode).</summary>
    Tensor Score(IReadOnlyList<Interaction> rows);
    /// <summary>CF logits of rows, without gradients.</summary>
    float[] ScoreRows(IReadOnlyList<Interaction> rows);
    /// <summary>Where its weights live.</summary>
    Device Device { get; }
    /// <summary>Moves the weights (CF models stay fp32 unless asked).</summary>
    void MoveTo(Device device, ScalarType dtype);
    /// <summary>Its weights (frozen after training).</summary>
    IEnumerable<Parameter> Weights { get; }
    /// <summary>Everything needed to rebuild it (tensors, including id lists), for the model archive.</summary>
    Dictionary<string, Tensor> ExportState();
}

/// <summary>
/// One CF model as a unit: its kind, the name saved models and the CLI use (with aliases), the name messages use, its defaults
/// (embedding size, learning rate, weight decay), how it trains and how it is rebuilt from a saved model. Each CF model declares
/// its own (<c>Registration</c>) and <see cref="CollaborativeModels.All"/> lists them; nothing else switches on the kind.
/// </summary>
public sealed record CollaborativeModelUnit(
    CollaborativeKind Kind, string Name, string DisplayName, IReadOnlyList<string> Aliases,
    int DefaultEmbeddingDim, double DefaultLearningRate, double DefaultWeightDecay,
    Func<IReadOnlyList<Interaction>, IReadOnlyList<Interaction>, MatrixFactorizationOptions?, Action<string>?, CancellationToken, ICollaborativeModel> Train,
    Func<Func<string, Tensor>, ICollaborativeModel> Import);

/// <summary>The CF models Cora has (<see cref="All"/>), and what is done with one by its kind or name.</summary>
public static class CollaborativeModels
{
    /// <summary>Every CF model, one entry each: adding a model is its file, its <see cref="CollaborativeKind"/> value and a line here.</summary>
    public static IReadOnlyList<CollaborativeModelUnit> All { get; } = new[] { MatrixFactorization.Registration, LightGcn.Registration, SasRec.Registration };

    /// <summary>The unit of a kind.</summary>
    public static CollaborativeModelUnit Of(CollaborativeKind kind) =>
        All.FirstOrDefault(u => u.Kind == kind) ?? throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown CF model");

    /// <summary>Rebuilds a saved CF model by its <see cref="ICollaborativeModel.Kind"/>.</summary>
    public static ICollaborativeModel Import(string kind, Func<string, Tensor> read) =>
        (All.FirstOrDefault(u => u.Name == kind) ?? throw new InvalidDataException($"unknown CF model kind '{ErrorText.Elide(kind, 40)}'; this Cora knows: {string.Join(", ", Kinds)}.")).Import(read);

    /// <summary>Warm = the CF stage was trained on both the user and the item (everything else is cold); Cora's one definition.</summary>
    public static bool IsWarm(ICollaborativeModel cf, int user, int item) => cf.KnowsUser(user) && cf.KnowsItem(item);

    /// <summary>The CF models Cora has, by <see cref="ICollaborativeModel.Kind"/>.</summary>
    public static IReadOnlyList<string> Kinds { get; } = All.Select(u => u.Name).ToArray();

    /// <summary>Trains the CF stage of a kind on the training rows (early stopping on <paramref name="valid"/>'s AUC).</summary>
    public static ICollaborativeModel Train(CollaborativeKind kind, IReadOnlyList<Interaction> train, IReadOnlyList<Interaction> valid,
        MatrixFactorizationOptions? options = null, Action<string>? log = null, CancellationToken ct = default) =>
        Of(kind).Train(train, valid, options, log, ct);

    public static string Name(CollaborativeKind kind) => Of(kind).Name;

    /// <summary>MF, LightGCN or SASRec (for messages).</summary>
    public static string DisplayName(CollaborativeKind kind) => Of(kind).DisplayName;

    /// <summary>The kind named <paramref name="s"/> (its name or an alias, any case).</summary>
    public static CollaborativeKind Parse(string s)
    {
        string key = s.Trim().ToLowerInvariant();
        return (All.FirstOrDefault(u => u.Name == key || u.Aliases.Contains(key))
            ?? throw new ArgumentException($"unknown CF model '{ErrorText.Elide(s, 40)}'; use {string.Join(", ", Kinds)}.")).Kind;
    }
}

/// <summary>The CF stage under the LLM methods (the paper's CoRA-MF, CoRA-LGCN, CoRA-SAS).</summary>
public enum CollaborativeKind
{
    /// <summary>Matrix factorisation (the default): one embedding per user and item.</summary>
    Mf,
    /// <summary>LightGCN: embeddings propagated over the user-item graph of the training positives.</summary>
    LightGcn,
    /// <summary>SASRec: the user embedding is a causal self-attention encoding of the row's liked history.</summary>
    SasRec,
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

/// <summary>Options of the CF stage: MF, LightGCN or SASRec (CoLLM/CoRA's values, in <see cref="CoraDefaults"/>). The size, learning
/// rate and weight decay left null take the chosen model's own default (<see cref="EmbeddingDimFor"/> and the two after it).</summary>
public sealed record MatrixFactorizationOptions
{
    /// <summary>Embedding size of users and items; null = the model's default: MF and LightGCN 256 (CoRA's), SASRec 64 (CoLLM's).
    /// The concat [u; i] (2x) feeds the query generator.</summary>
    [Option("--mf-dim", "CF embedding size (default: the CF model's own).", Min = 1, Max = 8192)]
    public int? EmbeddingDim { get; init; }
    /// <summary>Adam learning rate; null = the model's default: MF and LightGCN 1e-3, SASRec 1e-2. Lower it if validation AUC oscillates.</summary>
    [Option("--mf-lr", "CF stage's Adam learning rate (default: the CF model's own).", Min = 0, MinExclusive = true, Max = 10)]
    public double? LearningRate { get; init; }
    /// <summary>Adam weight decay (L2 on every weight); null = the model's default: MF and LightGCN 1e-4, SASRec 1e-2. The main guard
    /// against over-fitting: raise it when the training loss keeps falling while validation AUC stalls after a few epochs.</summary>
    [Option("--mf-wd", "CF stage's weight decay, L2 (default: the CF model's own); raise it when validation AUC stalls while the loss falls.", Min = 0, Max = 10)]
    public double? WeightDecay { get; init; }
    /// <summary>Rows per step (2048).</summary>
    [Option("--mf-batch-size", "Rows per CF training step.", Min = 1, Max = 1 << 24)]
    public int BatchSize { get; init; } = CoraDefaults.MfBatchSize;
    /// <summary>Upper bound on epochs (200); early stopping usually ends sooner.</summary>
    [Option("--mf-epochs", "Maximum CF epochs (early stopping on validation AUC).", Min = 1, Max = 100_000)]
    public int MaxEpochs { get; init; } = CoraDefaults.MfMaxEpochs;
    /// <summary>Stop after this many epochs without a better validation AUC (10).</summary>
    [Option("--mf-patience", "CF epochs without a better validation AUC before stopping.", Min = 1)]
    public int Patience { get; init; } = CoraDefaults.MfPatience;
    /// <summary>Seed of the initialisation and shuffling (2023).</summary>
    public long Seed { get; init; } = CoraDefaults.Seed;

    /// <summary>LightGCN: propagation layers over the user-item graph (2). More layers smooth more; 2-3 is LightGCN's range.</summary>
    [Option("--lightgcn-layers", "LightGCN propagation layers.", Min = 0, Max = 16)]
    public int GraphLayers { get; init; } = CoraDefaults.LightGcnLayers;
    /// <summary>SASRec: self-attention blocks (2).</summary>
    [Option("--sasrec-blocks", "SASRec self-attention blocks.", Min = 1, Max = 16)]
    public int SequenceBlocks { get; init; } = CoraDefaults.SasRecBlocks;
    /// <summary>SASRec: the most recent liked items read (25, CoLLM's); older ones are dropped.</summary>
    [Option("--sasrec-length", "SASRec: most recent liked items read.", Min = 1, Max = 4096)]
    public int SequenceLength { get; init; } = CoraDefaults.SasRecMaxLength;
    /// <summary>SASRec: attention heads (1, SASRec's); must divide <see cref="EmbeddingDim"/>.</summary>
    [Option("--sasrec-heads", "SASRec attention heads; must divide the embedding size.", Min = 1, Max = 64)]
    public int SequenceHeads { get; init; } = CoraDefaults.SasRecHeads;
    /// <summary>SASRec: dropout in the blocks (0.2, SASRec's for MovieLens).</summary>
    [Option("--sasrec-dropout", "SASRec dropout.", Min = 0, Max = 0.99)]
    public double SequenceDropout { get; init; } = CoraDefaults.SasRecDropout;

    /// <summary><see cref="EmbeddingDim"/>, or <paramref name="kind"/>'s default when it is null.</summary>
    public int EmbeddingDimFor(CollaborativeKind kind) => EmbeddingDim ?? DefaultsFor(kind).Dim;
    /// <summary><see cref="LearningRate"/>, or <paramref name="kind"/>'s default when it is null.</summary>
    public double LearningRateFor(CollaborativeKind kind) => LearningRate ?? DefaultsFor(kind).LearningRate;
    /// <summary><see cref="WeightDecay"/>, or <paramref name="kind"/>'s default when it is null.</summary>
    public double WeightDecayFor(CollaborativeKind kind) => WeightDecay ?? DefaultsFor(kind).WeightDecay;

    /// <summary>The defaults a CF model declares in its unit (<see cref="CollaborativeModels.All"/>).</summary>
    private static (int Dim, double LearningRate, double WeightDecay) DefaultsFor(CollaborativeKind kind)
    {
        var u = CollaborativeModels.Of(kind);
        return (u.DefaultEmbeddingDim, u.DefaultLearningRate, u.DefaultWeightDecay);
    }

    public IEnumerable<OptionError> Validate(string prefix = "")
    {
        var e = OptionChecks.Declared(this, prefix);
        int sasDim = EmbeddingDimFor(CollaborativeKind.SasRec);
        if (SequenceHeads >= 1 && sasDim >= 1 && sasDim % SequenceHeads != 0)
            e = e.Append(new OptionError(prefix + nameof(SequenceHeads), $"{SequenceHeads} must divide SASRec's {prefix}{nameof(EmbeddingDim)} ({sasDim})."));
        return e;
    }
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

    public MatrixFactorization(IdMap users, IdMap items, int dim, long seed = CoraDefaults.Seed) : base("mf")
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
    /// Wraps embeddings a user already has: row-major [users, k] and [items, k] float matrices with the original id of each
    /// row (the ids the data uses, never key indices). From ML.NET's matrix factorization use <see cref="FromMlNetFactors"/>,
    /// which handles both orientations and the key-to-id mapping.
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

    /// <summary>
    /// The CF stage from a trained ML.NET <c>MatrixFactorizationModelParameters</c> (<c>p = model.Model</c>):
    /// <code>
    /// var cf = MatrixFactorization.FromMlNetFactors(
    ///     p.LeftFactorMatrix, rowKeyValues, p.RightFactorMatrix, columnKeyValues, p.ApproximationRank,
    ///     usersAreRows: false);   // the ML.NET movie tutorial: MatrixColumnIndexColumnName = users, MatrixRowIndexColumnName = movies
    /// </code>
    /// <c>LeftFactorMatrix</c> holds NumberOfRows x ApproximationRank values (row-major) for the keys of the matrix *row* index
    /// column, <c>RightFactorMatrix</c> NumberOfColumns x ApproximationRank for the *column* index column. Key k (1-based) is row
    /// k - 1, and its original id is the k-th entry of that column's KeyValues annotation (<c>GetKeyValues</c> on the schema column
    /// after MapValueToKey), passed here as <paramref name="rowKeyValues"/> / <paramref name="columnKeyValues"/>.
    /// <paramref name="usersAreRows"/> says which side the users were: true when MatrixRowIndexColumnName was the user id.
    /// </summary>
    public static MatrixFactorization FromMlNetFactors(IReadOnlyList<float> leftFactorMatrix, IReadOnlyList<long> rowKeyValues,
        IReadOnlyList<float> rightFactorMatrix, IReadOnlyList<long> columnKeyValues, int approximationRank, bool usersAreRows)
    {
        if (leftFactorMatrix.Count != (long)rowKeyValues.Count * approximationRank)
            throw new ArgumentException($"LeftFactorMatrix has {leftFactorMatrix.Count} values but {rowKeyValues.Count} row keys x rank {approximationRank} = {(long)rowKeyValues.Count * approximationRank}: pass the KeyValues of the matrix row index column.", nameof(rowKeyValues));
        if (rightFactorMatrix.Count != (long)columnKeyValues.Count * approximationRank)
            throw new ArgumentException($"RightFactorMatrix has {rightFactorMatrix.Count} values but {columnKeyValues.Count} column keys x rank {approximationRank} = {(long)columnKeyValues.Count * approximationRank}: pass the KeyValues of the matrix column index column.", nameof(columnKeyValues));
        return usersAreRows
            ? FromMatrices(leftFactorMatrix, rowKeyValues, rightFactorMatrix, columnKeyValues, approximationRank)
            : FromMatrices(rightFactorMatrix, columnKeyValues, leftFactorMatrix, rowKeyValues, approximationRank);
    }

    public bool KnowsUser(int userId) => Users.Contains(userId);
    public bool KnowsItem(int itemId) => Items.Contains(itemId);
    public IReadOnlyList<long> ItemIds => Items.Ids;
    public Device Device => user_embedding.weight!.device;
    public void MoveTo(Device device, ScalarType dtype) => this.to(device, dtype);
    public IEnumerable<Parameter> Weights => parameters();
    /// <summary>By user id; a user unseen in training gets the zero vector (MF score 0, probability 0.5).</summary>
    public Tensor UserEmbeddings(IReadOnlyList<Interaction> rows) => user_embedding.call(torch.tensor(Users.Map(rows.Select(r => (long)r.UserId).ToArray()), device: Device));
    /// <summary>By item id; an item unseen in training gets the zero vector.</summary>
    public Tensor ItemEmbeddings(long[] itemIds) => item_embedding.call(torch.tensor(Items.Map(itemIds), device: Device));
    public Tensor Score(IReadOnlyList<Interaction> rows) => CollaborativeTraining.Dot(this, rows);
    public float[] ScoreRows(IReadOnlyList<Interaction> rows) => CollaborativeTraining.ScoreRows(this, rows);

    /// <summary>Trains MF with Adam and BCE, early stopping on validation AUC (the best epoch's weights are kept).</summary>
    public static MatrixFactorization Train(IReadOnlyList<Interaction> train, IReadOnlyList<Interaction> valid, MatrixFactorizationOptions? options = null,
        Action<string>? log = null, CancellationToken ct = default)
    {
        var o = options ?? new MatrixFactorizationOptions();
        OptionChecks.ThrowIfAny(o.Validate("MatrixFactorization."), nameof(options));
        torch.manual_seed(o.Seed);
        var mf = new MatrixFactorization(new IdMap(train.Select(r => (long)r.UserId)), new IdMap(train.Select(r => (long)r.ItemId)), o.EmbeddingDimFor(CollaborativeKind.Mf), o.Seed);
        CollaborativeTraining.Run(mf, mf, train, valid, o, CollaborativeKind.Mf, log, ct, afterStep: mf.ZeroUnknownRows);
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

    /// <summary>MF as a CF unit: CoRA's MF stage defaults.</summary>
    public static CollaborativeModelUnit Registration { get; } = new(CollaborativeKind.Mf, "mf", "MF", new[] { "mf" },
        CoraDefaults.MfEmbeddingDim, CoraDefaults.MfLearningRate, CoraDefaults.MfWeightDecay,
        (t, v, o, log, ct) => Train(t, v, o, log, ct), ImportState);

    public static MatrixFactorization ImportState(Func<string, Tensor> read)
    {
        var uids = read("user_ids").data<long>().ToArray();
        var iids = read("item_ids").data<long>().ToArray();
        var u = read("user_embedding.weight");
        var i = read("item_embedding.weight");
        // Shapes first: the tables to allocate are exactly the ones present in the file (never a size the file only declares).
        if (u.dim() != 2 || i.dim() != 2 || u.shape[0] != uids.Length + 1 || i.shape[0] != iids.Length + 1 || u.shape[1] != i.shape[1] || u.shape[1] < 1)
            throw new InvalidDataException($"MF state: tables [{string.Join(",", u.shape)}] and [{string.Join(",", i.shape)}] do not match the id lists ({uids.Length}+1, {iids.Length}+1).");
        var mf = new MatrixFactorization(new IdMap(uids), new IdMap(iids), (int)u.shape[1]);
        using var _ = torch.no_grad();
        mf.user_embedding.weight!.copy_(u);
        mf.item_embedding.weight!.copy_(i);
        foreach (var p in mf.parameters()) p.requires_grad = false;
        mf.eval();
        return mf;
    }
}
