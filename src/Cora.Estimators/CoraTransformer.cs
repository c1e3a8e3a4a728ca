using Microsoft.ML.Cora.Data;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.Cora.Estimators;

/// <summary>
/// Scores interactions with a trained <see cref="CoraModel"/>: adds <c>Score</c> (the "Yes" logit, or the MF logit),
/// <c>Probability</c> (sigmoid of Score) and <c>PredictedLabel</c> (Probability &gt; 0.5).
/// <see cref="Transform"/> is lazy; its cursor reads <see cref="CoraDefaults.ScoringReadAheadRows"/> rows ahead and scores them in batches of
/// <see cref="ScoringBatchSize"/> grouped by prompt length,
/// so memory stays bounded for any data size. Thread safety: the frozen LLM, CF model and trainable weights are
/// shared read-only; each cursor, row mapper or PredictionEngine owns its buffers, so several threads may score at once.
/// </summary>
public sealed class CoraTransformer : ITransformer, IDisposable
{
    internal const string LoaderSignature = "CoraTransformer";
    internal const string ModelSignature = "CORATRNS";
    // 0x00010001: format 1.1 (columns, batch size, then the Cora model zip, length-prefixed).
    // 0x00010002: format 1.2 adds the optional title column after the prompt column.
    // 0x00010003: format 1.3 adds the text-id lists (users, items) after the columns.
    internal const uint Version = 0x00010003, ReadableFrom = 0x00010001;

    private readonly IHostEnvironment _env;
    internal CoraColumns Columns { get; }
    /// <summary>The trained model underneath (CF stage, generator, frozen LLM): score, recommend or save it without ML.NET.</summary>
    public CoraModel Model { get; }
    /// <summary>Rows per LLM forward when scoring (larger batches use the GPU better; memory grows with batch x prompt length).</summary>
    public int ScoringBatchSize { get => _scoringBatchSize; set => _scoringBatchSize = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(ScoringBatchSize), value, "ScoringBatchSize must be at least 1."); }
    private int _scoringBatchSize;
    /// <summary>Loss and validation curves of the Fit that produced this model (null after loading).</summary>
    public Microsoft.ML.Cora.Training.TrainingResult? TrainingResult { get; internal set; }
    private readonly bool _embedLlm;

    internal CoraTransformer(IHostEnvironment env, CoraModel model, CoraColumns columns, int scoringBatchSize, bool embedLlm)
    {
        _env = env; Model = model; Columns = columns; _scoringBatchSize = Math.Max(1, scoringBatchSize); _embedLlm = embedLlm;
    }

    /// <summary>True: each output row depends on its input row only (scoring itself runs in batches).</summary>
    public bool IsRowToRowMapper => true;

    /// <summary>The input schema plus Score (the Yes-logit), Probability and PredictedLabel.</summary>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        Columns.Check(inputSchema, requireLabel: false);
        var b = new DataViewSchema.Builder();
        b.AddColumns(inputSchema);
        b.AddColumn(CoraColumns.Score, NumberDataViewType.Single);
        b.AddColumn(CoraColumns.Probability, NumberDataViewType.Single);
        b.AddColumn(CoraColumns.PredictedLabel, BooleanDataViewType.Instance);
        return b.ToSchema();
    }

    /// <summary>Scores the rows lazily, in batches of the scoring batch size, as a cursor reads them.</summary>
    public IDataView Transform(IDataView input) => new ScoredDataView(this, input, GetOutputSchema(input.Schema));

    /// <summary>A row-by-row mapper (what PredictionEngine uses).</summary>
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => new RowMapper(this, inputSchema, GetOutputSchema(inputSchema));

    internal bool IsCanceled => _env is MLContext ml && MlNetInternals.IsCanceled(ml);

    /// <summary>Scores a batch (shared by the cursor and the row mapper); titles given with the data join the catalog first.</summary>
    internal float[] ScoreBatch(List<Interaction> rows, List<string>? prompts, Dictionary<int, string>? titles = null)
    {
        if (IsCanceled) throw new OperationCanceledException("Cora: scoring was cancelled through MLContext.CancelExecution().");
        if (titles is { Count: > 0 }) Model.AddItems(titles.Where(kv => !Model.Items.Contains(kv.Key) || Model.Items.Title(kv.Key) != ItemCatalog.CleanTitle(kv.Value)));
        if (Model.UsesLlm && prompts is null)
        {
            var missing = Model.Items.MissingTargets(rows);
            if (missing.Count > 0) throw new KeyNotFoundException("Cora: " + ItemCatalog.MissingTitleMessage(missing));
        }
        return Model.Score(rows, ScoringBatchSize, default, prompts);
    }

    /// <summary>
    /// The <paramref name="k"/> best items for a user: the CF stage retrieves <paramref name="candidates"/> items (users it never
    /// saw: the most liked items of training), the model re-ranks them (MF alone: the CF order). The user's liked history comes
    /// from the training data the model remembers, or from <paramref name="history"/> (oldest first). Items the user was seen with
    /// in training (and the history) are left out unless <paramref name="excludeSeen"/> is false.
    /// </summary>
    public IReadOnlyList<CoraRecommendation> Recommend(int userId, int k = CoraDefaults.RecommendTop, IReadOnlyList<int>? history = null, int candidates = CoraDefaults.RecommendCandidates, bool excludeSeen = true) =>
        Named(CoraRecommender.Recommend(Model, ScoringBatchSize, userId, k, history, candidates, excludeSeen));

    /// <summary>
    /// <see cref="Recommend(int, int, IReadOnlyList{int}, int, bool)"/> for a model fitted on text ids: the user and the history by
    /// their text ids (a user the model never saw is recommended to as a cold user); each result carries
    /// <see cref="CoraRecommendation.ItemIdText"/>.
    /// </summary>
    public IReadOnlyList<CoraRecommendation> Recommend(string userId, int k = CoraDefaults.RecommendTop, IReadOnlyList<string>? history = null, int candidates = CoraDefaults.RecommendCandidates, bool excludeSeen = true)
    {
        var users = Columns.UserTexts ?? throw new InvalidOperationException($"Cora: this model was fitted on numeric user ids; call Recommend with the integer id.");
        var items = history is null ? null : Columns.ItemTexts ?? throw new InvalidOperationException($"Cora: this model was fitted on numeric item ids; pass the history as integer ids.");
        return Recommend(users.Of(userId, nameof(userId)), k, history?.Select(h => items!.Of(h, nameof(history))).ToList(), candidates, excludeSeen);
    }

    private IReadOnlyList<CoraRecommendation> Named(IReadOnlyList<CoraRecommendation> list)
    {
        foreach (var r in list)
        {
            r.UserIdText = Columns.UserTexts?.NameOf(r.UserId);
            r.ItemIdText = Columns.ItemTexts?.NameOf(r.ItemId);
        }
        return list;
    }

    /// <summary>
    /// Recommendations for every user id in <paramref name="users"/> (column <paramref name="userIdColumnName"/>), as an IDataView of
    /// <see cref="CoraRecommendation"/> rows (UserId, Rank, ItemId, Title, Score, Probability, CfScore).
    /// </summary>
    public IDataView Recommend(IDataView users, int k = CoraDefaults.RecommendTop, string userIdColumnName = CoraTrainer.Defaults.UserIdColumnName, int candidates = CoraDefaults.RecommendCandidates, bool excludeSeen = true)
    {
        var col = users.Schema.GetColumnOrNull(userIdColumnName) ?? throw new ArgumentOutOfRangeException(nameof(users), $"Cora: the users data has no column '{userIdColumnName}'.");
        var ids = new List<int>();
        using (var cur = users.GetRowCursor(new[] { col, CoraRows.RawBehind(users.Schema, col) }.OfType<DataViewSchema.Column>()))
        {
            var g = CoraRows.IdGetter(cur, col, Columns.UserTexts, keyZeroIsUnknown: true);
            int u = 0;
            while (cur.MoveNext()) { g(ref u); ids.Add(u); }
        }
        var all = ids.Distinct().SelectMany(u => Recommend(u, k, null, candidates, excludeSeen)).ToList();
        return new MLContext().Data.LoadFromEnumerable(all);
    }

    /// <summary>Adds or replaces titles of items (e.g. released after training) so that they can be scored and recommended.</summary>
    public CoraTransformer AddItems(IEnumerable<KeyValuePair<int, string>> titles)
    {
        Model.AddItems(titles);
        return this;
    }

    // ------------------------------------------------------------------ save / load

    void ICanSaveModel.Save(ModelSaveContext ctx)
    {
        MlNetInternals.Save(ctx, ModelSignature, Version, ReadableFrom, LoaderSignature, w =>
        {
            Columns.Write(w);
            w.Write(ScoringBatchSize);
            // The Cora zip goes through a temporary file and is copied in chunks: no whole-model buffer in memory.
            string tmp = Microsoft.ML.Cora.IO.ScratchSpace.NewFile("save", ".zip");
            try
            {
                using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16, FileOptions.DeleteOnClose))
                {
                    Model.Save(fs, _embedLlm);
                    w.Write(fs.Length);
                    w.Flush();
                    fs.Position = 0;
                    fs.CopyTo(w.BaseStream, 1 << 20);
                }
            }
            finally { if (File.Exists(tmp)) File.Delete(tmp); }
        });
    }

    /// <summary>
    /// Called by ML.NET's model loader, which finds it through the <c>[assembly: LoadableClass]</c> attribute the build writes into
    /// this assembly (build/MlNetLoadableClass.targets): a saved model names this assembly, and ML.NET reads its attribute on load.
    /// </summary>
    internal static CoraTransformer Create(IHostEnvironment env, object ctx)
    {
        var (r, written) = MlNetInternals.Open(ctx, ModelSignature, Version, ReadableFrom, LoaderSignature);
        CoraColumns columns;
        int batch;
        string tmp = Microsoft.ML.Cora.IO.ScratchSpace.NewFile("load", ".zip");
        using var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16, FileOptions.DeleteOnClose);
        try
        {
            columns = CoraColumns.Read(r, withTitle: written >= 0x00010002, withTextIds: written >= 0x00010003);
            batch = r.ReadInt32();
            if (batch < 1) throw new InvalidDataException($"bad scoring batch size {batch}");
            long n = r.ReadInt64();
            if (n <= 0) throw new InvalidDataException($"bad payload length {n}");
            // Copied in chunks to a temporary file (never more than the declared length, never the whole model in memory).
            var buf = new byte[1 << 20];
            for (long left = n; left > 0;)
            {
                int got = r.BaseStream.Read(buf, 0, (int)Math.Min(buf.Length, left));
                if (got <= 0) throw new EndOfStreamException($"payload truncated ({n - left} of {n} bytes)");
                fs.Write(buf, 0, got);
                left -= got;
            }
            fs.Position = 0;
        }
        catch (Exception e) when (e is EndOfStreamException or InvalidDataException or IOException)
        {
            throw new InvalidDataException($"The Cora model inside this ML.NET model is truncated or corrupt ({e.Message}).", e);
        }
        var settings = PendingLoad ?? new LoadSettings(Runtime.ComputeTarget.Resolve(null), null, null);
        var model = CoraModel.Load(fs, "Cora model", settings.LlmPath, settings.Target);
        if (settings.GeneratorDtype is not null) model.GeneratorDtype = settings.GeneratorDtype;
        return new CoraTransformer(env, model, columns, batch, embedLlm: false);
    }

    /// <summary>
    /// Wraps a <see cref="CoraModel"/> built or trained outside ML.NET (e.g. with <c>TrainingLoop</c>) as a transformer that reads
    /// <see cref="CoraInput"/>'s columns (UserId, ItemId, History). The transformer shares the model; dispose one of them, not both.
    /// </summary>
    public static CoraTransformer Create(MLContext mlContext, CoraModel model, int scoringBatchSize = CoraDefaults.ScoringBatchSize)
    {
        ArgumentNullException.ThrowIfNull(mlContext); ArgumentNullException.ThrowIfNull(model);
        if (scoringBatchSize < 1) throw new ArgumentOutOfRangeException(nameof(scoringBatchSize), scoringBatchSize, "scoringBatchSize must be at least 1.");
        var o = new CoraTrainer.Options();
        return new CoraTransformer(mlContext, model, new CoraColumns(o.UserIdColumnName, o.ItemIdColumnName, o.HistoryColumnName, null, null), scoringBatchSize, embedLlm: false);
    }

    /// <summary>What <c>Model.LoadCora</c> was asked for: the resolved device and LLM dtype, the generator's dtype, the LLM's location.</summary>
    internal sealed record LoadSettings(Runtime.ComputeTarget Target, string? GeneratorDtype, string? LlmPath);

    // Set by Model.LoadCora for the duration of one load on this thread: ML.NET's loader calls Create with no arguments of the caller's.
    [ThreadStatic] internal static LoadSettings? PendingLoad;

    /// <summary>The Cora transformer itself, or the one inside a transformer chain (e.g. what Model.Load or a pipeline's Fit returns).</summary>
    public static CoraTransformer Find(ITransformer model) => model switch
    {
        CoraTransformer t => t,
        IEnumerable<ITransformer> chain => chain.Select(x => x as CoraTransformer ?? (x is IEnumerable<ITransformer> ? TryFind(x) : null)).LastOrDefault(x => x is not null)
            ?? throw new ArgumentException("The transformer chain contains no Cora transformer.", nameof(model)),
        _ => throw new ArgumentException($"{model?.GetType().Name ?? "null"} is not a Cora transformer or a chain that contains one.", nameof(model)),
    };

    private static CoraTransformer? TryFind(ITransformer t) { try { return Find(t); } catch (ArgumentException) { return null; } }

    /// <summary>
    /// Moves the loaded model to another device and LLM dtype (e.g. trained on the CPU, scored on the GPU):
    /// <paramref name="device"/> cpu, cuda, cuda:N or auto; <paramref name="llmDtype"/> auto (bf16 on CUDA), bf16, fp16 or fp32.
    /// </summary>
    public CoraTransformer To(string device, string? llmDtype = null)
    {
        var d = Runtime.CoraDevice.Resolve(device);
        Model.To(d, Model.UsesLlm ? Runtime.CoraDevice.ResolveDtype(llmDtype, d) : null);
        return this;
    }

    /// <summary>Frees the model's tensors (the frozen LLM included).</summary>
    public void Dispose() => Model.Dispose();

    // ------------------------------------------------------------------ lazy scored view

    private sealed class ScoredDataView : IDataView
    {
        private readonly CoraTransformer _t;
        private readonly IDataView _input;
        public DataViewSchema Schema { get; }
        public ScoredDataView(CoraTransformer t, IDataView input, DataViewSchema schema) { _t = t; _input = input; Schema = schema; }
        public bool CanShuffle => false;
        public long? GetRowCount() => _input.GetRowCount();

        public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
        {
            int n = _input.Schema.Count;
            var needed = columnsNeeded.ToList();
            var inputNeeded = needed.Where(c => c.Index < n).Select(c => _input.Schema[c.Index]).ToList();
            bool scores = needed.Any(c => c.Index >= n);
            var main = _input.GetRowCursor(inputNeeded);
            if (!scores) return new Cursor(_t, Schema, main, null, needed);
            // A second cursor over the same rows reads ahead one batch of ids/histories; the first passes the input through.
            var ahead = _input.GetRowCursor(CoraRows.Needed(_input.Schema, _t.Columns, withLabel: false));
            return new Cursor(_t, Schema, main, ahead, needed);
        }

        public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
            new[] { GetRowCursor(columnsNeeded, rand) };
    }

    private sealed class Cursor : DataViewRowCursor
    {
        private readonly CoraTransformer _t;
        private readonly DataViewRowCursor _main;
        private readonly DataViewRowCursor? _ahead;
        private readonly CoraRows? _reader;
        private readonly bool[] _active;
        private readonly int _inputCount;
        private float[] _scores = Array.Empty<float>();
        private int _at, _count;
        private long _position = -1;

        public Cursor(CoraTransformer t, DataViewSchema schema, DataViewRowCursor main, DataViewRowCursor? ahead, IEnumerable<DataViewSchema.Column> active)
        {
            _t = t; Schema = schema; _main = main; _ahead = ahead; _inputCount = main.Schema.Count;
            _active = new bool[schema.Count];
            foreach (var c in active) _active[c.Index] = true;
            if (ahead is not null) _reader = new CoraRows(ahead, t.Columns, withLabel: false);
        }

        public override DataViewSchema Schema { get; }
        public override long Position => _position;
        public override long Batch => 0;
        public override bool IsColumnActive(DataViewSchema.Column column) => _active[column.Index];
        public override ValueGetter<DataViewRowId> GetIdGetter() => _main.GetIdGetter();

        public override bool MoveNext()
        {
            if (!_main.MoveNext()) return false;
            _position++;
            if (_ahead is not null)
            {
                if (_at >= _count) FillBatch();
                _at++;
            }
            return true;
        }

        private void FillBatch()
        {
            // A window of several batches is scored at once: Model.Score groups its rows by prompt length into batches.
            int batch = _t.ScoringBatchSize;
            int window = (CoraDefaults.ScoringReadAheadRows + batch - 1) / batch * batch;
            var rows = new List<Interaction>(window);
            var prompts = _t.Columns.Prompt is null ? null : new List<string>(window);
            var titles = _t.Columns.Title is null ? null : new Dictionary<int, string>();
            while (rows.Count < window && _ahead!.MoveNext())
            {
                var (r, p) = _reader!.Read();
                rows.Add(r);
                prompts?.Add(p!);
                if (_reader.ReadTitle() is { } t) titles![r.ItemId] = t;
            }
            _scores = _t.ScoreBatch(rows, prompts, titles);
            _count = rows.Count;
            _at = 0;
        }

        private float Current => _scores[_at - 1];

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (!_active[column.Index]) throw new InvalidOperationException($"Column '{column.Name}' is not active in this cursor.");
            if (column.Index < _inputCount) return _main.GetGetter<TValue>(_main.Schema[column.Index]);
            return OutputGetter<TValue>(column, () => Current);
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) { _main.Dispose(); _ahead?.Dispose(); }
            base.Dispose(disposing);
        }
    }

    internal static ValueGetter<TValue> OutputGetter<TValue>(DataViewSchema.Column column, Func<float> score)
    {
        Delegate d = column.Name switch
        {
            CoraColumns.Score => (ValueGetter<float>)((ref float v) => v = score()),
            CoraColumns.Probability => (ValueGetter<float>)((ref float v) => v = Sigmoid(score())),
            CoraColumns.PredictedLabel => (ValueGetter<bool>)((ref bool v) => v = score() > 0),
            _ => throw new InvalidOperationException($"Unknown Cora output column '{column.Name}'."),
        };
        return d as ValueGetter<TValue> ?? throw new InvalidOperationException($"Column '{column.Name}' is {column.Type}, not {typeof(TValue).Name}.");
    }

    /// <summary>The probability of a score (logit): 1 / (1 + e^-x).</summary>
    public static float Sigmoid(float x) => 1f / (1f + MathF.Exp(-x));

    // ------------------------------------------------------------------ row mapper (PredictionEngine)

    private sealed class RowMapper : IRowToRowMapper
    {
        private readonly CoraTransformer _t;
        public DataViewSchema InputSchema { get; }
        public DataViewSchema OutputSchema { get; }
        public RowMapper(CoraTransformer t, DataViewSchema input, DataViewSchema output) { _t = t; InputSchema = input; OutputSchema = output; }

        public IEnumerable<DataViewSchema.Column> GetDependencies(IEnumerable<DataViewSchema.Column> dependingColumns)
        {
            var list = dependingColumns.Where(c => c.Index < InputSchema.Count).Select(c => InputSchema[c.Index]).ToList();
            if (dependingColumns.Any(c => c.Index >= InputSchema.Count)) list.AddRange(CoraRows.Needed(InputSchema, _t.Columns, withLabel: false));
            return list.Distinct();
        }

        public DataViewRow GetRow(DataViewRow input, IEnumerable<DataViewSchema.Column> activeColumns) => new MappedRow(_t, input, OutputSchema, activeColumns);
    }

    private sealed class MappedRow : DataViewRow
    {
        private readonly CoraTransformer _t;
        private readonly DataViewRow _input;
        private readonly bool[] _active;
        private readonly CoraRows? _reader;
        private long _scoredAt = -1;
        private float _score;

        public MappedRow(CoraTransformer t, DataViewRow input, DataViewSchema schema, IEnumerable<DataViewSchema.Column> active)
        {
            _t = t; _input = input; Schema = schema;
            _active = new bool[schema.Count];
            foreach (var c in active) _active[c.Index] = true;
            if (_active.Skip(input.Schema.Count).Any(a => a)) _reader = new CoraRows(input, t.Columns, withLabel: false);
        }

        public override DataViewSchema Schema { get; }
        public override long Position => _input.Position;
        public override long Batch => _input.Batch;
        public override ValueGetter<DataViewRowId> GetIdGetter() => _input.GetIdGetter();
        public override bool IsColumnActive(DataViewSchema.Column column) => _active[column.Index];

        private float Score()
        {
            // One forward per input row (PredictionEngine serves single requests); cached per position.
            if (_scoredAt != _input.Position || _input.Position < 0)
            {
                var (r, p) = _reader!.Read();
                var titles = _reader.ReadTitle() is { } t ? new Dictionary<int, string> { [r.ItemId] = t } : null;
                _score = _t.ScoreBatch(new List<Interaction> { r }, p is null ? null : new List<string> { p }, titles)[0];
                _scoredAt = _input.Position;
            }
            return _score;
        }

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (column.Index < _input.Schema.Count) return _input.GetGetter<TValue>(_input.Schema[column.Index]);
            return OutputGetter<TValue>(column, Score);
        }
    }
}
